"""The account pages. Each view only renders a template: the page's JS module does the work,
through the public JSON API, with the bearer it keeps in sessionStorage (never a cookie).

Pages that carry a token or an authorization code in their URL (the email landings, the OAuth
result) are never cached and send no Referer onwards.
"""

from __future__ import annotations

from csp.decorators import csp_replace
from django.conf import settings
from django.http import Http404
from django.shortcuts import redirect
from django.urls import Resolver404, resolve
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_GET
from django.views.generic import TemplateView

from account_pages.pages import PAGES


# The pages need no inline style either: stricter than the site-wide policy (the admin's).
@method_decorator(csp_replace({"style-src": ["'self'"]}), name="dispatch")
class AccountPage(TemplateView):
    page: str = ""

    def get(self, request, *args, **kwargs):
        if not settings.ACCOUNT_PAGES_ENABLED:
            raise Http404
        response = super().get(request, *args, **kwargs)
        spec = PAGES[self.page]
        if spec.carries_secret:
            response["Cache-Control"] = "no-store"
            response["Referrer-Policy"] = "no-referrer"
        return response

    def get_template_names(self):
        return [f"account_pages/{self.page}.html"]

    def get_context_data(self, **kwargs):
        spec = PAGES[self.page]
        return {
            **super().get_context_data(**kwargs),
            "page": self.page,
            "title": spec.title,
            "needs_auth": spec.needs_auth,
            "magic_link_enabled": settings.MAGIC_LINK_ENABLED,
            # Parts of the pages whose API this server may not offer: the script skips them.
            "mfa_available": api_available("/api/v1/auth/mfa"),
            "passkeys_available": api_available("/api/v1/auth/passkeys"),
            "unlock_available": api_available("/api/v1/auth/unlock"),
        }


def api_available(path: str) -> bool:
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


def page(name: str):
    return require_GET(AccountPage.as_view(page=name))


@require_GET
def index(request):
    return redirect("account-security")


@require_GET
def sessions_alias(request):
    """Older emails link to /settings/sessions: the sessions live on the security page."""
    return redirect("account-security")


@require_GET
def connection_alias(request, connection_id):
    """Emails about one connection link to /connections/<id>: the connections page lists it."""
    return redirect("account-connections")
