"""The outbox's admin page in a real browser: it loads with no console error and no CSP violation."""

from __future__ import annotations

import pytest

from dashtam.outbox.services import outbox_record
from tests.audit.test_browser import _admin_login, browser  # noqa: F401 - the Chromium fixture
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.integration]


def test_staff_see_the_waiting_tasks_in_a_browser_without_errors(browser, live_server):  # noqa: F811
    outbox_record(task_name="accounts.tasks.password_reset_request_for", args=["ada@example.com"], kwargs={},
                  headers={}, error="OperationalError")
    staff = UserFactory(is_staff=True, is_superuser=True)
    page = browser.new_page()
    problems: list[str] = []

    def on_console(message):
        # Chromium asks every site for /favicon.ico; the admin has none (not this page's doing).
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            problems.append(f"{message.text} {message.location}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))

    _admin_login(page, live_server.url, staff.email)
    page.goto(f"{live_server.url}/admin/dashtam_outbox/outboxtask/")
    page.wait_for_load_state("networkidle")

    table = page.locator("#result_list").inner_text()
    assert "accounts.tasks.password_reset_request_for" in table and "OperationalError" in table
    assert "ada@example.com" not in page.content()
    assert problems == []
