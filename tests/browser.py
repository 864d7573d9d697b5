"""Headless Chromium for tests that look at a page as a person would.

Import the fixtures into a test module or conftest (tests/conftest.py already does):

    def test_the_page_loads(browser_page, live_server):
        page = browser_page.goto(f"{live_server.url}/admin/login/")
        page.wait_for_selector("#login-form")
        browser_page.assert_clean()

``browser`` is Debian's ``chromium`` driven by Playwright's sync API. Without Chromium the
test is skipped and says so, unless ``REQUIRE_BROWSER=1`` (CI sets it), where a missing
browser is a failure. ``browser_page`` is a fresh page that records every console error,
uncaught page error and Content-Security-Policy violation (the DOM's
``securitypolicyviolation`` events as well as Chromium's console report of them);
``assert_clean()`` fails listing them, and the fixture checks again when the test ends.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]

# Runs in every document before the page's own scripts; Playwright injects it outside the
# page's CSP. Violations are kept on window and read back by BrowserPage.problems().
_CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`
    + ` at ${e.sourceFile || document.location.href}:${e.lineNumber}`);
});
"""


DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"


def save_docs_screenshot(page, name: str, *, full_page: bool = False) -> None:
    """Save ``docs/img/<name>.png`` for the documentation site, only when DOCS_SCREENSHOTS=1
    (``make docs-screenshots``): screenshots come from the tests, never drawn by hand."""
    if os.environ.get("DOCS_SCREENSHOTS") != "1":
        return
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_IMG / f"{name}.png"), full_page=full_page)


def require_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        message = f"no Chromium at {CHROMIUM}: install Debian's chromium package to run the browser tests"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (REQUIRE_BROWSER=1)")
        pytest.skip(message)


class BrowserPage:
    """A Playwright page plus everything that went wrong on it."""

    def __init__(self, page):
        self.page = page
        self.errors: list[str] = []
        page.add_init_script(_CSP_LISTENER)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self._csp_seen: list[str] = []
        self._reported = 0

    def _console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"console error: {message.text}")

    def goto(self, url: str, **kwargs):
        self._collect_csp()  # violations of the page being left
        self.page.goto(url, **kwargs)
        return self.page

    def _collect_csp(self) -> None:
        try:
            found = self.page.evaluate("window.__cspViolations || []")
        except Exception:  # a page mid-navigation has no window to ask
            return
        for item in found:
            entry = f"CSP violation: {item}"
            if entry not in self._csp_seen:
                self._csp_seen.append(entry)

    def problems(self) -> list[str]:
        self._collect_csp()
        return self.errors + self._csp_seen

    def screenshot_for_docs(self, name: str, *, full_page: bool = False) -> None:
        """``save_docs_screenshot`` of this page (a no-op unless DOCS_SCREENSHOTS=1)."""
        save_docs_screenshot(self.page, name, full_page=full_page)

    def assert_clean(self) -> None:
        problems = self.problems()[self._reported:]
        self._reported += len(problems)  # each problem fails the test once, not again at teardown
        assert not problems, "the page reported problems:\n  " + "\n  ".join(problems)


@pytest.fixture
def browser(monkeypatch):
    """Headless Chromium (skipped, or failed under REQUIRE_BROWSER=1, when it is missing)."""
    require_chromium()
    from django.db import connection, connections
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


@pytest.fixture
def browser_page(browser):
    """A new page that records console errors, page errors and CSP violations.

    The test fails at teardown if any were recorded and the test did not already
    check with ``assert_clean()``.
    """
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    watched = BrowserPage(context.new_page())
    try:
        yield watched
        watched.assert_clean()
    finally:
        context.close()
