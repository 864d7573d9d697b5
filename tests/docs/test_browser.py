"""The pages a newcomer opens first, in headless Chromium under the real CSP.

Each test waits for real content and fails on any console error, page error or
Content-Security-Policy violation (``browser_page`` in tests/browser.py).
"""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.integration]


def test_swagger_ui_lists_the_operations_and_calls_me_with_the_token(browser_page, live_server):
    user = UserFactory(password=PASSWORD)
    page = browser_page.page
    login = page.request.post(f"{live_server.url}/api/v1/auth/login",
                              data={"email": user.email, "password": PASSWORD})
    assert login.status == 200
    access = login.json()["access"]

    browser_page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".opblock", timeout=15_000)
    # The operations are listed, grouped by tag.
    assert page.locator(".opblock").count() >= 25
    me = page.locator("#operations-auth-auth_me")
    assert me.count() == 1
    assert "/api/v1/auth/me" in me.inner_text()

    # Authorize with the access token.
    page.click("button.authorize")
    modal = page.locator(".modal-ux")
    modal.locator("input").first.fill(access)
    modal.locator("button.authorize").click()
    modal.locator("button.btn-done").click()
    assert page.locator("button.authorize.locked").count() == 1

    # Try it out: GET /api/v1/auth/me answers 200 with the signed-in user.
    me.locator(".opblock-summary").click()
    me.locator("button.try-out__btn").click()
    with page.expect_response(lambda r: r.url.endswith("/api/v1/auth/me")) as answer:
        me.locator("button.execute").click()
    response = answer.value
    assert response.status == 200
    assert response.request.headers["authorization"] == f"Bearer {access}"
    assert response.json()["email"] == user.email
    status = me.locator(".live-responses-table .response .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip().startswith("200")
    assert user.email in me.locator(".live-responses-table").inner_text()
    browser_page.assert_clean()


def test_swagger_ui_renders_before_anyone_signs_in(browser_page, live_server):
    page = browser_page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector("#operations-auth-auth_me", timeout=15_000)
    browser_page.screenshot_for_docs("swagger-ui")
    browser_page.assert_clean()


def test_home_page_links_the_docs_and_the_admin(browser_page, live_server):
    page = browser_page.goto(f"{live_server.url}/")
    hrefs = page.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert {"/api/docs/", "/admin/"} <= set(hrefs)
    page.click("a[href='/api/docs/']")
    page.wait_for_selector(".opblock", timeout=15_000)
    browser_page.assert_clean()


def test_admin_login_page_renders_under_the_csp(browser_page, live_server):
    page = browser_page.goto(f"{live_server.url}/admin/login/")
    page.wait_for_selector("#login-form input[name=username]")
    assert page.locator("input[type=submit]").count() == 1
    browser_page.assert_clean()


def test_audit_changelist_renders_under_the_csp(browser_page, live_server):
    staff = UserFactory(password=PASSWORD, is_staff=True, is_superuser=True)
    # Something to list: a failed login writes an audit row.
    failed = browser_page.page.request.post(f"{live_server.url}/api/v1/auth/login",
                                            data={"email": staff.email, "password": "Not-The-Password-1"})
    assert failed.status == 401
    page = browser_page.goto(f"{live_server.url}/admin/login/?next=/admin/audit/auditevent/")
    page.fill("input[name=username]", staff.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#result_list tbody tr")
    assert "auth.login.failed" in page.locator("#result_list").inner_text()
    # The filters and the search box are there and work without inline scripts.
    page.fill("#searchbar", failed.json()["request_id"])
    page.press("#searchbar", "Enter")
    page.wait_for_load_state()
    assert page.locator("#result_list tbody tr").count() >= 1
    browser_page.assert_clean()


def test_the_readme_path_login_in_swagger_then_authorize_then_me(browser_page, live_server):
    # The README's first steps, all inside /api/docs/: POST auth/login with the demo user
    # (the example fills the body), paste the access token into Authorize, call GET auth/me.
    user = UserFactory(email="demo@dashtam.local", password="Demo-Passw0rd!")
    page = browser_page.goto(f"{live_server.url}/api/docs/")
    login = page.locator("#operations-auth-auth_login")
    login.wait_for(timeout=15_000)
    login.locator(".opblock-summary").click()
    login.locator("button.try-out__btn").click()
    assert "demo@dashtam.local" in login.locator("textarea.body-param__text").input_value()
    with page.expect_response(lambda r: r.url.endswith("/api/v1/auth/login")) as answer:
        login.locator("button.execute").click()
    assert answer.value.status == 200
    access = answer.value.json()["access"]

    page.click("button.authorize")
    modal = page.locator(".modal-ux")
    modal.locator("input").first.fill(access)
    modal.locator("button.authorize").click()
    modal.locator("button.btn-done").click()

    me = page.locator("#operations-auth-auth_me")
    me.locator(".opblock-summary").click()
    me.locator("button.try-out__btn").click()
    with page.expect_response(lambda r: r.url.endswith("/api/v1/auth/me")) as answer:
        me.locator("button.execute").click()
    assert answer.value.status == 200
    assert answer.value.json()["email"] == user.email
    browser_page.assert_clean()
