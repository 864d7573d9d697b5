"""Staff powers follow Django permissions: every admin action needs its own permission.

The actions are posted the way a browser posts them: through the changelist's form, with the
CSRF token the admin handed out, on a client that enforces CSRF.
"""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.core import mail
from django.test import Client, RequestFactory
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import User
from audit.models import AuditEvent
from providers.models import ConnectionStatus, ProviderConnection
from sessions_mgmt.models import SecurityConfig, Session
from tests.conftest import PASSWORD
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

WRONG = "Wrong-Password-1!"
ME = "/api/v1/auth/me"
# Django's own session store and the admin's log of changes are written by merely using the
# admin; every other table holds data an action could change.
NOT_DATA = {"sessions.session", "admin.logentry"}


def make_staff(*codenames: str, superuser: bool = False) -> User:
    user = UserFactory(password=PASSWORD, is_staff=True, is_superuser=superuser)
    if codenames:
        perms = Permission.objects.filter(codename__in=codenames)
        assert perms.count() == len(codenames), codenames
        user.user_permissions.add(*perms)
    return user


def view_only_staff() -> User:
    user = UserFactory(password=PASSWORD, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    return user


def api_login(email: str, password: str = PASSWORD) -> APIClient:
    client = APIClient()
    response = client.post("/api/v1/auth/login", {"email": email, "password": password}, format="json")
    assert response.status_code == 200, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    return client


class AdminBrowser:
    """A staff member in the admin: CSRF enforced, the token taken from the admin's own pages."""

    def __init__(self, user: User):
        self.client = Client(enforce_csrf_checks=True)
        self.client.force_login(user)

    @staticmethod
    def changelist(model) -> str:
        return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")

    def page(self, model):
        return self.client.get(self.changelist(model))

    def run(self, model, action: str, pks: list):
        self.client.get(reverse("admin:index"))  # the admin sets the CSRF cookie (logout form)
        token = self.client.cookies["csrftoken"].value
        return self.client.post(self.changelist(model), {
            "action": action, "index": "0", "_selected_action": [str(pk) for pk in pks],
            "post": "yes",  # the confirmation step of delete_selected, in case it were offered
            "csrfmiddlewaretoken": token,
        })


@pytest.fixture
def world(db):
    """Something for every action to change: a locked user with a live session and a
    brokerage connection, a superuser with a live session, the global token version."""
    victim = UserFactory(password=PASSWORD)
    chief = make_staff(superuser=True)
    victim_api, chief_api = api_login(victim.email), api_login(chief.email)
    for _ in range(10):
        APIClient().post("/api/v1/auth/login", {"email": victim.email, "password": WRONG}, format="json")
    assert AccessAttempt.objects.filter(username=victim.email).exists()
    ProviderConnection.objects.create(user=victim, provider_key="sandbox", alias="Mine",
                                      status=ConnectionStatus.ACTIVE)
    SecurityConfig.objects.get_or_create(pk=1)
    mail.outbox.clear()
    return {"victim": victim, "chief": chief, "victim_api": victim_api, "chief_api": chief_api}


def snapshot() -> dict:
    data = {}
    for model in apps.get_models():
        label = model._meta.label_lower
        if model._meta.managed and label not in NOT_DATA:
            data[label] = list(model._base_manager.order_by("pk").values())
    return data


def every_action() -> list[tuple[type, str]]:
    """(model, action name) for every action any admin offers a superuser, plus delete_selected."""
    request = RequestFactory().get("/admin/")
    request.user = User(is_staff=True, is_superuser=True, is_active=True)
    found = []
    for model, model_admin in admin.site._registry.items():
        names = set(model_admin.get_actions(request)) | {"delete_selected"}
        found += [(model, name) for name in sorted(names)]
    return found


def test_every_admin_action_declares_the_permission_it_needs():
    for model, model_admin in admin.site._registry.items():
        for name in model_admin.actions or ():
            func = getattr(model_admin, name) if isinstance(name, str) else name
            allowed = getattr(func, "allowed_permissions", ())
            assert allowed, f"{model.__name__} action {name} declares no allowed_permissions"
            assert "view" not in allowed, f"{model.__name__} action {name} runs with view alone"


@pytest.mark.slow
def test_a_view_only_staff_member_sees_no_action_and_a_forged_post_changes_nothing(
    world, django_capture_on_commit_callbacks,
):
    actions = every_action()
    names = {name for _, name in actions}
    assert {"unlock_accounts", "send_password_reset", "deactivate_accounts", "revoke_sessions",
            "revoke_user_tokens", "revoke_all_tokens", "force_refresh", "rotate_tokens", "revoke",
            "export_csv"} <= names
    browser = AdminBrowser(view_only_staff())
    for model in {model for model, _ in actions}:
        page = browser.page(model)
        assert page.status_code == 200, model
        assert 'name="action"' not in page.content.decode(), f"{model.__name__} offers an action"

    before = snapshot()
    with django_capture_on_commit_callbacks(execute=True):
        for model, name in actions:
            pks = list(model._base_manager.values_list("pk", flat=True)) if model._meta.managed else []
            response = browser.run(model, name, pks)
            assert response.status_code in (200, 302, 403), (model, name, response.status_code)
            assert response.get("Content-Type", "").startswith("text/html"), (model, name)  # no CSV

    assert snapshot() == before  # rows, tokens, locks, connections, audit trail: all unchanged
    assert mail.outbox == []
    assert world["victim_api"].get(ME).status_code == 200
    assert world["chief_api"].get(ME).status_code == 200
    assert ProviderConnection.objects.get().status == ConnectionStatus.ACTIVE


@pytest.mark.slow
def test_the_same_post_by_a_superuser_does_act(world, django_capture_on_commit_callbacks):
    """The control: the forged posts above are the real thing, so their refusal means something."""
    browser = AdminBrowser(world["chief"])
    victim = world["victim"]
    with django_capture_on_commit_callbacks(execute=True):
        assert browser.run(User, "unlock_accounts", [victim.pk]).status_code == 302
        assert browser.run(User, "send_password_reset", [victim.pk]).status_code == 302
    assert not AccessAttempt.objects.filter(username=victim.email).exists()
    assert [m.to for m in mail.outbox] == [[victim.email]]
    assert browser.run(Session, "revoke_sessions",
                       list(Session.objects.filter(user=victim).values_list("pk", flat=True))).status_code == 302
    assert world["victim_api"].get(ME).status_code == 401


@pytest.mark.slow
def test_each_action_needs_its_own_permission(world):
    victim = world["victim"]
    unlocker = AdminBrowser(make_staff("view_user", "unlock_user"))
    page = unlocker.page(User).content.decode()
    assert 'value="unlock_accounts"' in page
    assert 'value="deactivate_accounts"' not in page and 'value="send_password_reset"' not in page

    unlocker.run(User, "deactivate_accounts", [victim.pk])
    assert User.objects.get(pk=victim.pk).is_active
    unlocker.run(User, "unlock_accounts", [victim.pk])
    assert not AccessAttempt.objects.filter(username=victim.email).exists()
    event = AuditEvent.objects.get(action="auth.lockout.cleared")
    assert event.target_id == str(victim.pk)


def test_only_a_superuser_deactivates_a_superuser(world):
    victim, chief = world["victim"], world["chief"]
    deactivator = AdminBrowser(make_staff("view_user", "deactivate_user"))

    response = deactivator.run(User, "deactivate_accounts", [victim.pk, chief.pk])
    assert response.status_code == 302
    assert User.objects.get(pk=chief.pk).is_active and User.objects.get(pk=victim.pk).is_active
    assert world["chief_api"].get(ME).status_code == 200

    deactivator.run(User, "deactivate_accounts", [victim.pk])
    assert not User.objects.get(pk=victim.pk).is_active

    AdminBrowser(make_staff(superuser=True)).run(User, "deactivate_accounts", [chief.pk])
    assert not User.objects.get(pk=chief.pk).is_active


@pytest.mark.slow
def test_only_a_superuser_revokes_every_token(world):
    every_permission = list(Permission.objects.values_list("codename", flat=True).distinct())
    almighty = make_staff(*every_permission)
    browser = AdminBrowser(almighty)
    assert 'value="revoke_all_tokens"' not in browser.page(SecurityConfig).content.decode()
    browser.run(SecurityConfig, "revoke_all_tokens", [1])
    assert SecurityConfig.objects.get().min_token_version == 0
    assert world["victim_api"].get(ME).status_code == 200

    AdminBrowser(world["chief"]).run(SecurityConfig, "revoke_all_tokens", [1])
    assert SecurityConfig.objects.get().min_token_version == 1
    assert world["victim_api"].get(ME).status_code == 401


def test_provider_actions_need_their_own_permissions(world):
    connection = ProviderConnection.objects.get()
    reviewer = AdminBrowser(make_staff("view_providerconnection", "refresh_connection"))
    page = reviewer.page(ProviderConnection).content.decode()
    assert 'value="force_refresh"' in page
    assert 'value="revoke"' not in page and 'value="rotate_tokens"' not in page
    reviewer.run(ProviderConnection, "revoke", [connection.pk])
    assert ProviderConnection.objects.get().status == ConnectionStatus.ACTIVE

    AdminBrowser(make_staff("view_providerconnection", "revoke_connection")).run(
        ProviderConnection, "revoke", [connection.pk])
    assert ProviderConnection.objects.get().status == ConnectionStatus.REVOKED


def test_exporting_the_audit_trail_needs_the_export_permission(world):
    viewer = AdminBrowser(make_staff("view_auditevent"))
    ids = list(AuditEvent.objects.values_list("pk", flat=True))
    response = viewer.run(AuditEvent, "export_csv", ids)
    assert not response.get("Content-Type", "").startswith("text/csv")

    exporter = AdminBrowser(make_staff("view_auditevent", "export_auditevent"))
    response = exporter.run(AuditEvent, "export_csv", ids)
    assert response["Content-Type"].startswith("text/csv")
    assert AuditEvent.objects.filter(action="admin.action", extra__action="audit.export_csv").exists()


def test_names_set_in_the_admin_follow_the_same_rule_as_the_api(world):
    victim = world["victim"]
    browser = AdminBrowser(make_staff("view_user", "change_user"))
    url = reverse("admin:accounts_user_change", args=[victim.pk])
    browser.client.get(url)
    token = browser.client.cookies["csrftoken"].value
    form = {"first_name": "Visit https://evil.example", "last_name": "Lovelace", "_save": "Save",
            "csrfmiddlewaretoken": token}
    response = browser.client.post(url, form)
    assert response.status_code == 200 and "Names cannot contain a web address." in response.content.decode()
    assert User.objects.get(pk=victim.pk).first_name == "Ada"
    response = browser.client.post(url, {**form, "first_name": "Grace"})
    assert response.status_code == 302
    assert User.objects.get(pk=victim.pk).first_name == "Grace"
