"""The admin's second-factor step in a real browser, with ADMIN_REQUIRE_MFA on.

Headless Chromium through Playwright, as in tests/audit/test_browser.py (skipped without
Chromium unless REQUIRE_BROWSER=1). Every page must load with no console error and no
CSP violation.
"""

from __future__ import annotations

import pytest

from tests.accounts.mfa_helpers import code_for
from tests.audit.test_browser import browser  # noqa: F401 - the shared Chromium fixture
from tests.conftest import PASSWORD
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.integration]


def _watch(page) -> list[str]:
    problems: list[str] = []
    def on_console(message):
        where = message.location.get("url", "")
        # The browser's own favicon request is not one of these pages.
        if message.type in ("error", "warning") and not where.endswith("/favicon.ico"):
            problems.append(f"{message.type}: {message.text} {where}")

    page.on("console", on_console)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    return problems


def _password(page, base: str, email: str) -> None:
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_load_state()


def test_staff_enter_the_admin_only_after_a_totp_code(browser, live_server, settings):  # noqa: F811
    from accounts.mfa.services import totp_demo_device_ensure

    settings.ADMIN_REQUIRE_MFA = True
    staff = UserFactory(password=PASSWORD, is_staff=True, is_superuser=True)
    secret = totp_demo_device_ensure(user=staff)
    page = browser.new_page()
    problems = _watch(page)

    _password(page, live_server.url, staff.email)
    assert page.url.endswith("/admin/mfa/")
    assert page.locator("#mfa-form input[name=code]").count() == 1
    # The password alone opens nothing.
    page.goto(f"{live_server.url}/admin/accounts/user/")
    assert "/admin/login/" in page.url
    _password(page, live_server.url, staff.email)

    page.fill("input[name=code]", "000000" if code_for(secret) != "000000" else "111111")
    page.click("input[type=submit]")
    page.wait_for_load_state()
    assert page.locator(".errornote").count() == 1 and page.url.endswith("/admin/mfa/")

    page.fill("input[name=code]", code_for(secret))
    page.click("input[type=submit]")
    page.wait_for_load_state()
    assert page.url.rstrip("/").endswith("/admin")
    page.goto(f"{live_server.url}/admin/accounts/user/")
    assert page.locator("#result_list").count() == 1
    assert secret not in page.content()
    assert [p for p in problems if "401" not in p] == []


def test_staff_without_a_factor_are_told_how_to_enrol(browser, live_server, settings):  # noqa: F811
    settings.ADMIN_REQUIRE_MFA = True
    staff = UserFactory(password=PASSWORD, is_staff=True, is_superuser=True)
    page = browser.new_page()
    problems = _watch(page)
    _password(page, live_server.url, staff.email)
    assert page.locator(".mfa-enrol-required").count() == 1
    assert "/api/v1/auth/mfa/totp" in page.content()
    page.goto(f"{live_server.url}/admin/")
    assert "/admin/login/" in page.url
    assert [p for p in problems if "403" not in p] == []
