"""The audit admin: read-only, exact searches, links, CSV, and bounded queries."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import record
from dashtam import context
from tests.conftest import PASSWORD
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/audit/auditevent/"


def _write(request_id: str, *, n: int = 1, ip: str = "198.51.100.1", actor=None, action="admin.action",
           outcome="success", extra=None):
    token = context.set_context(context.RequestContext(request_id=request_id, ip=ip, user_agent="t"))
    try:
        return [record(action=action, outcome=outcome, actor=actor, extra=extra or {"i": i}) for i in range(n)]
    finally:
        context.reset(token)


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def investigator(client):
    """Staff with only audit.view_auditevent: not a superuser."""
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    client.force_login(user)
    return client


def _ids(response) -> set[int]:
    return {obj.pk for obj in response.context["cl"].result_list}


def test_staff_with_the_view_permission_see_events_but_cannot_change_them(investigator):
    event = _write("r-1")[0]
    listing = investigator.get(CHANGELIST)
    assert listing.status_code == 200 and _ids(listing) == {event.pk}
    assert investigator.get(f"{CHANGELIST}{event.pk}/change/").status_code == 200
    assert investigator.get(f"{CHANGELIST}add/").status_code == 403
    assert investigator.post(f"{CHANGELIST}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert investigator.post(f"{CHANGELIST}{event.pk}/change/", {"action": "auth.logout"}).status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).action == "admin.action"


def test_staff_without_the_permission_and_non_staff_are_kept_out(client):
    _write("r-1")
    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    assert client.get(CHANGELIST).status_code == 403
    client.force_login(UserFactory())
    response = client.get(CHANGELIST)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_search_by_request_id_is_exact(staff_client):
    wanted = _write("req-abc", n=3)
    _write("req-abcd", n=2)
    _write("xreq-abc", n=1)
    response = staff_client.get(CHANGELIST, {"q": "req-abc"})
    assert _ids(response) == {e.pk for e in wanted}


def test_search_by_actor_email_and_by_ip(staff_client):
    alice = UserFactory(email="alice@example.com")
    hers = _write("r-a", n=2, actor=alice, ip="2001:db8::1")
    _write("r-b", n=2, actor=UserFactory(email="bob@example.com"), ip="203.0.113.4")
    assert _ids(staff_client.get(CHANGELIST, {"q": "ALICE@example.com"})) == {e.pk for e in hers}
    assert _ids(staff_client.get(CHANGELIST, {"q": "2001:0db8:0:0::1"})) == {e.pk for e in hers}


def test_rows_link_to_the_same_request_and_the_same_actor(staff_client):
    alice = UserFactory(email="alice@example.com")
    first = _write("req-1", n=2, actor=alice)
    later = _write("req-2", n=1, actor=alice)
    _write("req-3", n=1)
    page = staff_client.get(CHANGELIST).content.decode()
    assert "?request_id=req-1" in page and f"?actor={alice.pk}" in page
    same_request = staff_client.get(CHANGELIST, {"request_id": "req-1"})
    assert _ids(same_request) == {e.pk for e in first}
    same_actor = staff_client.get(CHANGELIST, {"actor": str(alice.pk)})
    assert _ids(same_actor) == {e.pk for e in first + later}
    detail = staff_client.get(f"{CHANGELIST}{first[0].pk}/change/").content.decode()
    assert "?request_id=req-1" in detail and f"?actor={alice.pk}" in detail


def test_filters_by_action_outcome_and_date_range(staff_client):
    failed = _write("r-f", action="auth.login.failed", outcome="failure")
    _write("r-s", action="auth.login.succeeded")
    assert _ids(staff_client.get(CHANGELIST, {"action": "auth.login.failed"})) == {failed[0].pk}
    assert _ids(staff_client.get(CHANGELIST, {"outcome": "failure"})) == {failed[0].pk}
    today = timezone.now().date()
    assert len(_ids(staff_client.get(CHANGELIST, {"created_from": today.isoformat()}))) == 2
    assert _ids(staff_client.get(CHANGELIST, {"created_to": (today - timedelta(days=1)).isoformat()})) == set()
    bad = staff_client.get(CHANGELIST, {"created_from": "yesterday"})
    assert bad.status_code == 302 and "e=1" in bad["Location"]


def test_the_changelist_never_counts_the_whole_table(staff_client, settings):
    settings.AUDIT_ADMIN_COUNT_LIMIT = 5
    _write("r-many", n=8)
    response = staff_client.get(CHANGELIST)
    assert "More than 5 audit events" in response.content.decode()
    assert len(_ids(response)) == 8


@pytest.mark.parametrize("params", [{}, {"q": "req-7"}, {"q": "alice@example.com"}, {"q": "198.51.100.1"},
                                    {"action": "admin.action", "outcome": "success"}])
def test_changelist_and_search_run_a_bounded_number_of_queries(staff_client, django_assert_max_num_queries,
                                                               params):
    alice = UserFactory(email="alice@example.com")
    for i in range(10):
        _write(f"req-{i}", n=3, actor=alice if i % 2 else UserFactory())
    staff_client.get(CHANGELIST)  # warm the session and permission caches like a real visit
    with django_assert_max_num_queries(6):
        response = staff_client.get(CHANGELIST, params)
    assert response.status_code == 200


def test_csv_export_streams_the_filtered_rows_and_is_audited(staff_client, staff_user):
    wanted = _write("req-csv", n=3)
    _write("req-other", n=2)
    response = staff_client.post(f"{CHANGELIST}?request_id=req-csv", {
        "action": "export_csv", "select_across": "1", "index": "0",
        "_selected_action": [str(wanted[0].pk)],
    })
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {int(r["id"]) for r in rows} == {e.pk for e in wanted}
    assert all(r["request_id"] == "req-csv" for r in rows)
    assert all(r["extra"].startswith("{") for r in rows)
    audit = AuditEvent.objects.get(action="admin.action", actor=staff_user)
    assert audit.extra["action"] == "audit.export_csv" and audit.extra["filters"] == {"request_id": "req-csv"}


def test_admin_login_works_with_the_password(client, staff_user):
    response = client.post("/admin/login/?next=/admin/", {"username": staff_user.email, "password": PASSWORD})
    assert response.status_code == 302


def test_csv_cells_that_look_like_formulas_are_neutralised(staff_client):
    token = context.set_context(context.RequestContext(request_id="req-formula"))
    try:
        event = record(action="admin.action", target_type="x", target_id="1", target_repr='=HYPERLINK("http://x")')
    finally:
        context.reset(token)
    response = staff_client.post(CHANGELIST, {"action": "export_csv", "_selected_action": [str(event.pk)]})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0]["target_repr"] == "'" + '=HYPERLINK("http://x")'


def test_query_count_does_not_grow_with_rows(staff_client, django_assert_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _write("req-a", n=2, actor=UserFactory())
    staff_client.get(CHANGELIST)
    with CaptureQueriesContext(connection) as few:
        staff_client.get(CHANGELIST)
    for i in range(20):
        _write(f"req-b{i}", n=2, actor=UserFactory())
    with CaptureQueriesContext(connection) as many:
        staff_client.get(CHANGELIST)
    assert len(many) == len(few)
    assert not any("COUNT(*)" in q["sql"] and "LIMIT" not in q["sql"] for q in many.captured_queries)


def test_facet_counts_are_never_offered(staff_client, django_assert_max_num_queries):
    _write("r-facets", n=3)
    staff_client.get(CHANGELIST)
    with django_assert_max_num_queries(6):
        response = staff_client.get(CHANGELIST, {"_facets": "True"})
    assert response.status_code == 200
    assert "Show counts" not in response.content.decode()


@pytest.mark.parametrize("params", [{"ip": "not-an-ip"}, {"actor": "not-a-uuid"}, {"created_to": "2026-13-40"}])
def test_a_malformed_filter_value_is_an_error_notice_not_a_crash(staff_client, params):
    _write("r-x")
    response = staff_client.get(CHANGELIST, params)
    assert response.status_code == 302 and "e=1" in response["Location"]
