"""The admin's sign-in: the password, then (for staff with a factor, or for every staff
member under ADMIN_REQUIRE_MFA) a TOTP or recovery code before Django's login happens.

``/admin/login/`` ("admin:login") is served by ``admin_login``, installed as the admin
site's ``login`` by ``accounts/mfa/admin.py``; ``/admin/mfa/`` is ``admin_mfa_step``. A
correct password does not log the staff member in: it leaves a pending step in the
Django session (a new session key, MFA_TOKEN_SECONDS, MFA_TOKEN_MAX_FAILURES wrong
codes) and redirects to ``/admin/mfa/``. Only a correct code there calls Django's
``login()`` (which fires ``user_logged_in``: the lockout counter is reset only then).
Wrong codes count toward the account's lockout like wrong passwords.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth import login as auth_login
from django.contrib.auth.views import LoginView
from django.db import transaction
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from accounts.mfa import services
from accounts.models import User
from audit.services import record
from dashtam.errors import DomainError

PENDING = "dashtam_admin_mfa"


class _PasswordStep(LoginView):
    def form_valid(self, form):
        user = form.get_user()
        if not (settings.ADMIN_REQUIRE_MFA or services.mfa_methods_for(user=user)):
            return super().form_valid(form)
        self.request.session.cycle_key()  # nothing from before the password carries over
        self.request.session[PENDING] = {
            "uid": str(user.pk), "backend": getattr(user, "backend", ""), "failures": 0,
            "exp": time.time() + settings.MFA_TOKEN_SECONDS, "next": self.get_success_url(),
        }
        return redirect("admin-mfa")


@never_cache
def admin_login(request, extra_context=None):
    """AdminSite.login, with the second-factor step between the password and the login."""
    site = admin.site
    if request.method == "GET" and site.has_permission(request):
        return redirect(reverse("admin:index", current_app=site.name))
    context = {
        **site.each_context(request), "title": "Log in", "subtitle": None,
        "app_path": request.get_full_path(), "username": request.user.get_username(),
    }
    if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
        context[REDIRECT_FIELD_NAME] = reverse("admin:index", current_app=site.name)
    request.current_app = site.name
    return _PasswordStep.as_view(
        extra_context=context, authentication_form=site.login_form or AdminAuthenticationForm,
        template_name=site.login_template or "admin/login.html",
    )(request)


def _pending_user(request) -> tuple[dict | None, User | None]:
    pending = request.session.get(PENDING)
    if not isinstance(pending, dict) or pending.get("exp", 0) < time.time():
        request.session.pop(PENDING, None)
        return None, None
    user = User.objects.filter(pk=pending.get("uid"), is_active=True, is_staff=True).first()
    if user is None:
        request.session.pop(PENDING, None)
    return pending, user


@never_cache
@csrf_protect
@sensitive_post_parameters("code")
def admin_mfa_step(request):
    """GET: the code form. POST: check the code; on success log in and go on."""
    pending, user = _pending_user(request)
    if user is None:
        return redirect("admin:login")
    site = admin.site
    context = {**site.each_context(request), "title": "Two-step verification", "subtitle": None,
               "app_path": request.get_full_path(), "error": "", "email": user.email}
    if not services.mfa_methods_for(user=user):
        # ADMIN_REQUIRE_MFA and no factor: no way in until one is enrolled.
        request.session.pop(PENDING, None)
        record(action="auth.mfa.failed", outcome="denied", target=user, actor=user,
               extra={"reason": "no_factor", "step": "admin"})
        return render(request, "admin/mfa_enrol_required.html", context, status=403)
    if request.method == "POST":
        try:
            method = services.staff_mfa_verify(request=request, user=user, code=request.POST.get("code", ""))
        except DomainError as exc:
            if exc.problem_code == "INVALID_MFA_CODE":
                pending["failures"] = pending.get("failures", 0) + 1
                if pending["failures"] >= settings.MFA_TOKEN_MAX_FAILURES:
                    request.session.pop(PENDING, None)
                    return redirect("admin:login")
                request.session[PENDING] = pending
                context["error"] = "That code is wrong, expired or was already used."
                return render(request, "admin/mfa_step.html", context, status=401)
            request.session.pop(PENDING, None)
            context["error"] = str(exc.detail)
            return render(request, "admin/mfa_step.html", context, status=exc.status_code,
                          headers=exc.headers)
        request.session.pop(PENDING, None)
        with transaction.atomic():
            auth_login(request, user, backend=pending.get("backend") or None)
            record(action="auth.login.succeeded", target=user, actor=user,
                   extra={"interface": "admin", "auth_methods": ["password", method]})
        target = pending.get("next") or ""
        if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                               require_https=request.is_secure()):
            target = reverse("admin:index")
        return redirect(target)
    return render(request, "admin/mfa_step.html", context)
