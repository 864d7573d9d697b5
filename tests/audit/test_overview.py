"""The Security overview and the grouped action filter, through the admin's HTTP stack."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from audit.models import AuditEvent
from audit.overview import security_overview
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/audit/auditevent/"
OVERVIEW = "/admin/audit/auditevent/overview/"


def _event(action, outcome="success", *, hours_ago=0.0, ip="198.51.100.1", actor=None, extra=None):
    return AuditEvent(action=action, outcome=outcome, created_at=timezone.now() - timedelta(hours=hours_ago),
                      ip=ip, actor=actor, actor_email=actor.email if actor else "", extra=extra or {})


@pytest.fixture
def staff_client(client):
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    client.force_login(user)
    return client


def test_overview_counts_the_window_and_ignores_older_events(staff_client):
    alice = UserFactory(email="alice@example.com")
    AuditEvent.objects.bulk_create([
        *[_event("auth.login.failed", "failure", hours_ago=h, ip="203.0.113.5", actor=alice) for h in (0.1, 1.5, 3)],
        _event("auth.login.failed", "failure", hours_ago=30, ip="203.0.113.5", actor=alice),  # outside 24 h
        _event("auth.lockout", "denied", hours_ago=2, actor=alice),
        _event("session.token_reuse_detected", "denied", hours_ago=1),
        _event("ratelimit.exceeded", "denied", hours_ago=1, extra={"rule": "login"}),
        _event("ratelimit.exceeded", "denied", hours_ago=2, extra={"rule": "login"}),
        _event("ratelimit.exceeded", "denied", hours_ago=2, extra={"rule": "refresh"}),
    ])
    day = security_overview(window_key="24h")
    failed = day.time_charts[0]
    assert [s.total for s in failed.series] == [3, 1] and len(failed.buckets) == 24
    assert day.bar_charts[0].bars == [("login", 2), ("refresh", 1)]
    ips = next(t for t in day.tops if t.param == "ip")
    accounts = next(t for t in day.tops if t.param == "actor_email")
    assert ips.rows == [("203.0.113.5", 3)] and accounts.rows == [("alice@example.com", 3)]
    week = security_overview(window_key="7d")
    assert week.time_charts[0].series[0].total == 4 and len(week.time_charts[0].buckets) == 28

    page = staff_client.get(OVERVIEW, {"window": "24h"})
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count("<svg") >= 5
    totals = re.findall(r'data-total="(\d+)"', html)
    assert totals[0] == "4"  # 3 failed logins + 1 lockout in the first chart
    # The link narrows to the action only while "failures" is one code (MFA adds auth.mfa.failed).
    from audit.overview import failure_actions

    narrow = "&amp;action=auth.login.failed" if len(failure_actions()) == 1 else ""
    assert f"?ip=203.0.113.5{narrow}&amp;created_from=" in html
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []  # no inline script for the CSP to block
    assert "style=" not in html.split('id="content-main"', 1)[1]  # no inline styles in what we draw


def test_overview_needs_the_audit_view_permission(client):
    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    assert client.get(OVERVIEW).status_code == 403
    client.logout()
    response = client.get(OVERVIEW)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_overview_runs_a_bounded_number_of_queries(staff_client, django_assert_max_num_queries):
    AuditEvent.objects.bulk_create([_event("auth.login.failed", "failure", hours_ago=h / 10) for h in range(50)])
    staff_client.get(OVERVIEW)
    with django_assert_max_num_queries(8):
        assert staff_client.get(OVERVIEW, {"window": "30d"}).status_code == 200


def test_the_action_filter_takes_a_whole_area(staff_client):
    AuditEvent.objects.bulk_create([_event("session.refreshed"), _event("session.revoked"),
                                    _event("auth.login.failed", "failure"), _event("provider.sync.completed")])
    response = staff_client.get(CHANGELIST, {"action": "group:session"})
    assert {e.action for e in response.context["cl"].result_list} == {"session.refreshed", "session.revoked"}
    html = response.content.decode()
    assert '<optgroup label="session">' in html and 'value="group:session" selected' in html
    # The dropdown's own field (named apart from the admin's actions menu) means the same.
    by_dropdown = staff_client.get(CHANGELIST, {"action_filter": "group:session", "outcome": "success"})
    assert {e.action for e in by_dropdown.context["cl"].result_list} == {"session.refreshed", "session.revoked"}
    assert 'name="action"' not in by_dropdown.content.decode().split('id="changelist-filter"', 1)[1]
    bad = staff_client.get(CHANGELIST, {"action": "group:nope"})
    assert bad.status_code == 302 and "e=1" in bad["Location"]


def test_the_detail_page_shows_the_actor_once_and_the_chain_state(staff_client):
    from audit.services import audit_chain_seal

    alice = UserFactory(email="alice@example.com")
    AuditEvent.objects.bulk_create([_event("auth.login.failed", "failure", actor=alice)])
    event = AuditEvent.objects.get()
    html = staff_client.get(f"{CHANGELIST}{event.pk}/change/").content.decode()
    assert "Not sealed yet" in html and "Matches the hash taken when it was written" in html
    assert "field-same_actor" not in html and "field-actor_email" not in html
    audit_chain_seal()
    html = staff_client.get(f"{CHANGELIST}{event.pk}/change/").content.decode()
    assert "Event 1 of 1 in the chain" in html
    assert "Verified: its contents match the hash taken when it was written" in html


def test_chart_text_is_escaped(staff_client):
    AuditEvent.objects.bulk_create([_event("ratelimit.exceeded", "denied", extra={"rule": "<script>x</script>"})])
    html = staff_client.get(OVERVIEW).content.decode()
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html


def test_the_detail_page_says_plainly_when_a_sealed_event_was_edited(staff_client):
    from audit.services import audit_chain_seal
    from tests.audit.test_chain import _tamper

    AuditEvent.objects.bulk_create([_event("auth.login.failed", "failure"), _event("admin.action")])
    audit_chain_seal()
    first, second = AuditEvent.objects.order_by("seq")
    _tamper("UPDATE audit_auditevent SET outcome = 'success' WHERE id = %s", [first.pk])
    html = staff_client.get(f"{CHANGELIST}{first.pk}/change/").content.decode()
    assert "BROKEN: its contents no longer match the keyed hash taken when it was written." in html
    assert "Verified" not in html
    assert "Verified" in staff_client.get(f"{CHANGELIST}{second.pk}/change/").content.decode()
