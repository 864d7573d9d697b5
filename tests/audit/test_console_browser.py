"""The staff console in Chromium at 1400 x 900: the changelist fits, the overview's charts draw.

Seeds a day of security events, opens the changelist, a detail page and the
Security overview as staff, and checks what a person would see: every column on
screen without wrapping, the grouped action dropdown, the request-id link, the
charts drawn from the seeded data, the top lists linking into the filtered
changelist, and no console error or CSP violation on any page. Screenshots go to
the test's temporary folder, and to docs/img/ with UPDATE_DOCS_SCREENSHOTS=1
(that is how the pictures in docs/audit.md are made).
"""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_chain_seal
from tests.audit.test_browser import _admin_login, browser  # noqa: F401 - the Chromium fixture
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.integration]

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
ATTACKER_IP = "203.0.113.66"


def _seed(now) -> dict:
    """A day of events: failed logins (mostly from one address), lockouts, reuse, new devices,
    rate-limit refusals, provider refreshes and a breaker opening."""
    victims = [UserFactory(email=f"victim{i}@example.com") for i in range(3)]
    rows = []

    oldest_in_window = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)

    def add(action, outcome, hours_ago, *, ip="198.51.100.7", actor=None, extra=None, minutes=0):
        rows.append(AuditEvent(
            # The 24-hour chart starts at the whole hour 23 hours before this one: an event seeded
            # "23 hours and k minutes ago" falls out of it during the first k minutes of an hour.
            action=action, outcome=outcome, created_at=max(now - timedelta(hours=hours_ago, minutes=minutes),
                                                           oldest_in_window),
            actor=actor, actor_email=actor.email if actor else "", ip=ip,
            request_id=str(uuid.uuid4()), route="api/v1/auth/login", method="POST",
            path="/api/v1/auth/login", user_agent="Mozilla/5.0 (seed)",
            target_type="accounts.user" if actor else "", target_id=str(actor.pk) if actor else "",
            target_repr=actor.email if actor else "", extra=extra or {}))

    failed = 0
    for hour in range(24):
        for k in range(hour % 4 + 1):
            victim = victims[k % len(victims)]
            add("auth.login.failed", "failure", hour, ip=ATTACKER_IP if k % 2 == 0 else f"198.51.100.{k + 10}",
                actor=victim, extra={"reason": "invalid_credentials"}, minutes=k)
            failed += 1
        if hour % 6 == 0:
            add("auth.lockout", "denied", hour, ip=ATTACKER_IP, actor=victims[0], minutes=30)
        if hour % 3 == 0:
            add("session.new_device", "success", hour, actor=victims[1], minutes=5)
            add("provider.token.refreshed", "success", hour, minutes=10)
        if hour % 8 == 0:
            add("provider.token.refresh_failed", "failure", hour, minutes=11)
    add("session.token_reuse_detected", "denied", 2, actor=victims[2])
    add("provider.circuit.opened", "failure", 5, extra={"provider": "schwab", "failures": 5})
    for rule, n in (("login", 5), ("register", 2), ("refresh", 1)):
        for i in range(n):
            add("ratelimit.exceeded", "denied", i, ip=ATTACKER_IP, extra={"rule": rule, "rate": "20/m"})
    AuditEvent.objects.bulk_create(rows)
    return {"failed": failed, "victims": victims}


def _watch(page) -> list[str]:
    problems: list[str] = []
    # Django's own login page has no icon, so Chromium asks for /favicon.ico once (404): not ours.
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") and not m.location.get("url", "").endswith("/favicon.ico")
            else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    return problems


def _shot(page, name: str, tmp_path: Path) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=False)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMG / name), full_page=False)


def test_changelist_and_overview_at_1400_px(browser, live_server, tmp_path):  # noqa: F811
    now = timezone.now()
    seeded = _seed(now)
    staff = UserFactory(is_staff=True, is_superuser=True, email="staff@example.com")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    problems = _watch(page)
    _admin_login(page, live_server.url, staff.email)

    # --- The changelist: every column visible, one line per row. ---------------------------------
    page.goto(f"{live_server.url}/admin/audit/auditevent/")
    headers = page.locator("#result_list thead th").all_inner_texts()
    for column in ("TIME (UTC)", "ACTION", "OUTCOME", "ACTOR", "IP", "TARGET", "REQUEST"):
        assert any(column in h.upper() for h in headers), headers
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400
    table = page.locator("#result_list").bounding_box()
    assert table["x"] + table["width"] <= 1400
    rows = page.locator("#result_list tbody tr")
    assert max(rows.nth(i).bounding_box()["height"] for i in range(rows.count())) < 40  # nothing wraps
    row = rows.filter(has_text="auth.login.failed").first
    actor_cell = row.locator("td.field-actor_link")
    assert "@example.com" in actor_cell.inner_text()  # the whole address, not "victim0@"
    assert actor_cell.evaluate("el => el.scrollWidth <= el.clientWidth")
    rid = row.locator("a.audit-rid")
    full_id = rid.get_attribute("data-request-id")
    assert len(rid.inner_text()) <= 10 and full_id in rid.get_attribute("title")
    # The action filter is one compact dropdown, grouped by area.
    select = page.locator("#changelist-filter select[name=action_filter]")
    assert select.count() == 1
    groups = page.locator("#changelist-filter select[name=action_filter] optgroup").evaluate_all("els => els.map(e => e.label)")
    for group in ("auth", "session", "provider", "admin", "audit"):
        assert group in groups
    assert select.bounding_box()["height"] < 60
    _shot(page, "audit-changelist.png", tmp_path)

    # One click on a short request id: every event of that request.
    rid.click()
    page.wait_for_load_state()
    assert parse_qs(urlsplit(page.url).query)["request_id"] == [full_id]
    assert page.locator("#result_list tbody tr").count() == 1, page.locator("#result_list tbody").inner_text()

    # Choosing a group in the dropdown filters at once (a static script, allowed by the CSP).
    page.goto(f"{live_server.url}/admin/audit/auditevent/")
    with page.expect_navigation():
        select.select_option("group:session")
    assert parse_qs(urlsplit(page.url).query)["action_filter"] == ["group:session"]
    actions = set(page.locator("#result_list td.field-action_code").all_inner_texts())
    assert actions == {"session.new_device", "session.token_reuse_detected"}

    # --- A detail page: the actor once, the chain position and verification in words. --------------
    page.locator("#result_list tbody tr th a").first.click()
    page.wait_for_load_state()
    content = page.locator("#content-main").inner_text()
    assert "Not sealed yet" in content and "Matches the hash taken when it was written" in content
    audit_chain_seal()  # what the periodic task does
    page.reload()
    content = page.locator("#content-main").inner_text()
    assert "in the chain; it follows event" in content
    assert "Verified: its contents match the hash taken when it was written and its chain hash, and it links to the event before it." in content
    assert page.locator(".field-actor_link").count() == 1
    assert page.locator(".field-actor_email, .field-same_actor, .field-same_request").count() == 0
    _shot(page, "audit-detail.png", tmp_path)

    # --- The Security overview: charts drawn from the seeded data. -----------------------------------
    page.goto(f"{live_server.url}/admin/audit/auditevent/")
    page.get_by_role("link", name="Security overview").click()
    page.wait_for_load_state()
    charts = page.locator("svg.chart")
    assert charts.count() >= 5  # the MFA chart draws once MFA codes exist
    first = page.locator("section.overview-card").first
    assert "Failed logins and lockouts" in first.inner_text()
    lockouts = 4
    assert int(first.locator("svg.chart").get_attribute("data-total")) == seeded["failed"] + lockouts
    assert first.locator("rect.bar").count() >= 24  # one bar (at least) per hour
    bars = first.locator("rect.bar").first.bounding_box()
    assert bars["height"] > 0 and bars["width"] > 0  # really drawn, not just in the DOM
    rules = page.locator("section.overview-card", has_text="Rate-limit refusals by rule")
    assert rules.locator("rect.bar").count() == 3 and "login" in rules.inner_text()
    assert "reuse detections (1)" in page.locator("section.overview-card", has_text="reuse").inner_text()
    assert "breaker openings (1)" in page.locator("#content-main").inner_text()
    top_ips = page.locator("section.overview-top-card", has_text="IP addresses")
    assert ATTACKER_IP in top_ips.locator("tbody tr").first.inner_text()
    _shot(page, "audit-overview.png", tmp_path)
    page.goto(page.url + "?window=7d" if "?" not in page.url else page.url)
    assert page.locator("svg.chart").count() >= 5
    page.goto(f"{live_server.url}/admin/audit/auditevent/overview/")
    with page.expect_navigation():
        top_ips.locator("a", has_text=ATTACKER_IP).click()
    query = parse_qs(urlsplit(page.url).query)
    assert query["ip"] == [ATTACKER_IP]
    rows = page.locator("#result_list tbody tr")
    assert rows.count() > 0
    assert set(page.locator("#result_list td.field-ip_link").all_inner_texts()) == {ATTACKER_IP}

    assert problems == [], problems


def test_the_overview_is_for_staff_with_the_audit_permission_only(browser, live_server):  # noqa: F811
    user = UserFactory(is_staff=True)  # staff, but without audit.view_auditevent
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    _admin_login(page, live_server.url, user.email)
    response = page.goto(f"{live_server.url}/admin/audit/auditevent/overview/")
    assert response.status == 403
    assert page.locator("svg.chart").count() == 0
