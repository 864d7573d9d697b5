"""The investigation, in a real browser: a request id from an error, into the admin.

Headless Chromium (Debian's ``chromium`` package) driven by Playwright. Where no
Chromium is installed the test is skipped and says so, unless REQUIRE_BROWSER=1
(CI sets it), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import uuid

import pytest
from django.db import connection, connections

from audit.models import AuditEvent
from audit.services import record
from dashtam import context
from tests.conftest import PASSWORD
from tests.factories import UserFactory

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser(monkeypatch):
    if not os.path.exists(CHROMIUM):
        message = f"no Chromium at {CHROMIUM}: install Debian's chromium package to run the admin browser test"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (REQUIRE_BROWSER=1)")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread; the ORM calls the
    # test makes between page actions are still plain synchronous calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # The live server's threads close their database connection after each request, so
    # none is left open when the test database is dropped at the end of the run.
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
            # ORM calls made while Playwright's loop runs use connections of their own
            # (Django keeps them per context there): close them before the loop stops.
            connections.close_all()


def _admin_login(page, base: str, email: str) -> None:
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_load_state()


def _noise(request_id: str, n: int) -> None:
    token = context.set_context(context.RequestContext(request_id=request_id, ip="198.51.100.99"))
    try:
        for i in range(n):
            record(action="admin.action", extra={"action": "noise", "i": i})
    finally:
        context.reset(token)


def test_staff_find_exactly_the_events_of_a_reported_request(browser, live_server):
    victim = UserFactory()
    staff = UserFactory(is_staff=True, is_superuser=True)
    page = browser.new_page()

    # A user hits an error and reports its request_id.
    failed = page.request.post(f"{live_server.url}/api/v1/auth/login",
                               data={"email": victim.email, "password": "Not-The-Password-1"})
    assert failed.status == 401
    request_id = failed.json()["request_id"]
    assert failed.headers["x-request-id"] == request_id
    # Other traffic, including ids that share a prefix with the reported one.
    _noise(request_id + "0", 3)
    _noise(str(uuid.uuid4()), 3)
    expected = set(AuditEvent.objects.filter(request_id=request_id).values_list("pk", flat=True))
    assert expected

    _admin_login(page, live_server.url, staff.email)
    page.goto(f"{live_server.url}/admin/audit/auditevent/")
    page.fill("#searchbar", request_id)
    page.press("#searchbar", "Enter")
    page.wait_for_load_state()

    rows = page.locator("#result_list tbody tr")
    assert rows.count() == len(expected)
    assert "auth.login.failed" in page.locator("#result_list").inner_text()
    for i in range(rows.count()):
        # The list shows the id's first characters; the whole id is on the link (and its hover title).
        link = rows.nth(i).locator("a.audit-rid")
        assert request_id[:8] in link.inner_text()
        assert link.get_attribute("data-request-id") == request_id and request_id in link.get_attribute("title")
    # From a row to every event of the same request, through the link.
    page.locator("#result_list tbody tr a.audit-rid").first.click()
    page.wait_for_load_state()
    assert page.locator("#result_list tbody tr").count() == len(expected)
    assert f"request_id={request_id}" in page.url


def test_non_staff_get_no_access_to_the_audit_log(browser, live_server):
    user = UserFactory()
    _noise("req-secret", 1)
    page = browser.new_page()
    _admin_login(page, live_server.url, user.email)
    assert "/admin/login/" in page.url
    assert page.locator(".errornote").count() == 1
    page.goto(f"{live_server.url}/admin/audit/auditevent/?q=req-secret")
    assert "/admin/login/" in page.url
    assert page.locator("#result_list").count() == 0
    assert "198.51.100.99" not in page.content() and "admin.action" not in page.content()
