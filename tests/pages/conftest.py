"""Browser fixtures for the account pages, on the shared ones (tests/browser.py): headless
Chromium (Debian's ``chromium``) through Playwright, against the live server on
http://localhost:<port>.

Every page a test opens collects console errors, uncaught exceptions and CSP violations;
the test fails on any of them at its end. Where no Chromium is installed the tests are
skipped and say so, unless REQUIRE_BROWSER=1 (CI sets it), where that is a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from tests.browser import BrowserPage

# Screenshots for the docs: written to docs/img/ when DOCS_SCREENSHOTS=1 (how the committed
# images were made), to a temporary folder otherwise, so a test run leaves the checkout clean.
DOCS_IMG = Path(django_settings.BASE_DIR) / "docs" / "img"


class PageProblems:
    """Console errors, page errors and CSP violations of every page a test opened
    (each a ``tests.browser.BrowserPage``)."""

    def __init__(self):
        self.pages: list[BrowserPage] = []

    def __iter__(self):
        return iter([problem for page in self.pages for problem in page.problems()[page._reported:]])

    def __bool__(self):
        return any(True for _ in self)

    def clear(self):
        """The problems so far were expected (the test checked them): do not fail on them."""
        for page in self.pages:
            page._reported = len(page.problems())


@pytest.fixture
def page_problems():
    """Checked when ``new_page`` ends (while the pages are still open, so a last CSP violation
    is read too)."""
    return PageProblems()


@pytest.fixture
def new_page(browser, page_problems):
    """``new_page()`` opens a page in a fresh browser context (its own sessionStorage), watched."""
    contexts = []

    def open_page(**kwargs):
        context = browser.new_context(**{"viewport": {"width": 1280, "height": 800}, **kwargs})
        contexts.append(context)
        watched = BrowserPage(context.new_page())
        page_problems.pages.append(watched)
        return watched.page

    try:
        yield open_page
        problems = list(page_problems)
        assert not problems, "the pages reported problems:\n  " + "\n  ".join(problems)
    finally:
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
