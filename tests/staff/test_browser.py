"""The admin's actions in a real browser: a view-only staff member is offered none, and a staff
member with the unlock permission unlocks an account through the changelist's form.

Headless Chromium, as in tests/audit/test_browser.py (skipped without it unless REQUIRE_BROWSER=1).
"""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from tests.audit.test_browser import _admin_login, browser  # noqa: F401 - the fixture
from tests.conftest import PASSWORD
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.integration]

PAGES = ["accounts/user", "sessions_mgmt/session", "sessions_mgmt/securityconfig",
         "providers/providerconnection", "audit/auditevent", "axes/accessattempt"]


def _watch(page) -> list[str]:
    problems: list[str] = []
    # The browser's own favicon request is not the admin's (the project serves no favicon).
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text} {m.location.get('url')}")
            if m.type in ("error", "warning") and not m.location.get("url", "").endswith("/favicon.ico")
            else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    return problems


def test_view_only_staff_see_no_action_and_an_unlocker_unlocks_in_the_browser(browser, live_server,  # noqa: F811
                                                                               settings):
    settings.RATELIMIT_ENABLE = False
    victim = UserFactory(password=PASSWORD)
    for _ in range(10):
        APIClient().post("/api/v1/auth/login", {"email": victim.email, "password": "Wrong-1-Password!"},
                         format="json")
    assert AccessAttempt.objects.filter(username=victim.email).exists()

    viewer = UserFactory(password=PASSWORD, is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    page = browser.new_page()
    problems = _watch(page)
    _admin_login(page, live_server.url, viewer.email)
    for path in PAGES:
        response = page.goto(f"{live_server.url}/admin/{path}/")
        assert response.status == 200, path
        assert page.locator("select[name=action]").count() == 0, path
    assert problems == [], problems
    page.close()

    unlocker = UserFactory(password=PASSWORD, is_staff=True)
    unlocker.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "unlock_user"]))
    page = browser.new_page()
    problems = _watch(page)
    _admin_login(page, live_server.url, unlocker.email)
    page.goto(f"{live_server.url}/admin/accounts/user/?q={victim.email}")
    options = page.locator("select[name=action] option").evaluate_all("els => els.map(e => e.value)")
    assert set(options) == {"", "unlock_accounts"}
    page.check(f"input[name=_selected_action][value='{victim.pk}']")
    page.select_option("select[name=action]", "unlock_accounts")
    page.click("button[name=index]")
    page.wait_for_load_state()
    assert "failed login attempt(s)." in page.locator(".messagelist").inner_text()
    assert problems == []
    assert not AccessAttempt.objects.filter(username=victim.email).exists()
