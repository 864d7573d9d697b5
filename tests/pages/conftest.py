"""Browser fixtures for the account pages: headless Chromium (Debian's ``chromium``) through
Playwright, against the live server on http://localhost:<port>.

Every page a test opens collects console errors, uncaught exceptions and CSP violations;
the test fails on any of them at its end. Where no Chromium is installed the tests are
skipped and say so, unless REQUIRE_BROWSER=1 (CI sets it), where that is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection, connections

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
# Screenshots for the docs: written to docs/img/ when DOCS_SCREENSHOTS=1 (how the committed
# images were made), to a temporary folder otherwise, so a test run leaves the checkout clean.
DOCS_IMG = Path(django_settings.BASE_DIR) / "docs" / "img"

# Reports every CSP violation to the console as an error, with the directive and the blocked URI,
# even where the browser itself would only warn.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


@pytest.fixture
def chromium(monkeypatch):
    if not os.path.exists(CHROMIUM):
        message = f"no Chromium at {CHROMIUM}: install Debian's chromium package to run the browser journeys"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (REQUIRE_BROWSER=1)")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread; the ORM calls the
    # test makes between page actions are still plain synchronous calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
            connections.close_all()


class PageProblems(list):
    """Console errors, page errors and CSP violations seen by the pages of one test."""

    def watch(self, page):
        page.add_init_script(CSP_LISTENER)
        page.on("console", lambda m: self.append(f"console {m.type}: {m.text} ({page.url})")
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.append(f"page error: {e} ({page.url})"))
        return page


@pytest.fixture
def page_problems():
    problems = PageProblems()
    yield problems
    assert not problems, "the pages logged errors:\n" + "\n".join(problems)


@pytest.fixture
def new_page(chromium, page_problems):
    """``new_page()`` opens a page in a fresh browser context (its own sessionStorage), watched."""
    contexts = []

    def open_page(**kwargs):
        context = chromium.new_context(**kwargs)
        contexts.append(context)
        return page_problems.watch(context.new_page())

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def shot(tmp_path):
    """``shot(page, "account-login")`` saves a full-page screenshot for the docs."""
    folder = DOCS_IMG if os.environ.get("DOCS_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)

    def take(page, name: str):
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    return take


@pytest.fixture
def site(settings, live_server, smtp_sink):
    """The live server as a newcomer's `make run` has it: FRONTEND_URL is its /account, the
    sandbox brokerage is served by the app itself, and mail goes to a real SMTP sink."""
    base = live_server.url
    settings.FRONTEND_URL = f"{base}/account"
    settings.PROVIDER_OAUTH_RESULT_PATH = "/connections/callback"
    settings.SANDBOX_PROVIDER_ENABLED = True
    settings.SANDBOX_API_BASE_URL = f"{base}/sandbox"
    settings.SANDBOX_REDIRECT_URI = f"{base}/api/v1/providers/oauth/sandbox/callback"
    settings.WEBAUTHN_RP_ID = "localhost"
    settings.WEBAUTHN_ORIGINS = [base]
    settings.DEBUG = False
    return base
