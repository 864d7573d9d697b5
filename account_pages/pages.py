"""The account pages, their titles and what each needs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    title: str
    needs_auth: bool = False
    carries_secret: bool = False  # a token or an OAuth code in the URL


PAGES: dict[str, Page] = {
    "login": Page("Sign in"),
    "register": Page("Create an account"),
    "forgot-password": Page("Forgot your password?"),
    "verify-email": Page("Verify your email address", carries_secret=True),
    "reset-password": Page("Choose a new password", carries_secret=True),
    "magic-link": Page("Sign in with your email link", carries_secret=True),
    "unlock": Page("Unlock your account", carries_secret=True),
    "security": Page("Security", needs_auth=True),
    "connections": Page("Brokerage connections", needs_auth=True),
    "connections-callback": Page("Finishing the connection", needs_auth=True, carries_secret=True),
}
