"""Request ids that investigations can trust (issue 13, section 7).

The incoming X-Request-ID is the request id only through a trusted proxy
(TRUSTED_PROXY_COUNT > 0). Otherwise every request gets a new UUID; a sane client
value is kept as ``client_request_id``: recorded on the audit rows, searchable in the
admin and the staff API, echoed in X-Client-Request-ID.
"""

from __future__ import annotations

import uuid

import pytest

from audit.models import AuditEvent
from tests.accounts.conftest import login
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    settings.RATELIMIT_ENABLE = False


def failed_login(client, email, **headers):
    response = login(client, email, "Wrong-Horse-9-Battery") if not headers else client.post(
        "/api/v1/auth/login", {"email": email, "password": "Wrong-Horse-9-Battery"}, format="json", **headers)
    assert response.status_code == 401
    return response


def test_two_clients_sending_the_same_id_do_not_share_a_trail(api_client, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    alice, mallory = UserFactory(email="alice@example.com"), UserFactory(email="mallory@example.com")
    first = failed_login(api_client, alice.email, HTTP_X_REQUEST_ID="shared-id")
    second = failed_login(api_client, mallory.email, HTTP_X_REQUEST_ID="shared-id")
    ids = {first["X-Request-ID"], second["X-Request-ID"]}
    assert len(ids) == 2 and "shared-id" not in ids
    for response in (first, second):
        uuid.UUID(response["X-Request-ID"])
        assert response.json()["request_id"] == response["X-Request-ID"]
        assert response["X-Client-Request-ID"] == "shared-id"
    # Each request's own trail holds only its own account.
    for response, user in ((first, alice), (second, mallory)):
        rows = AuditEvent.objects.filter(request_id=response["X-Request-ID"])
        assert {r.actor_email for r in rows} == {user.email}
        assert {r.client_request_id for r in rows} == {"shared-id"}


def test_behind_a_trusted_proxy_the_incoming_id_is_the_request_id(api_client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    user = UserFactory()
    response = failed_login(api_client, user.email, HTTP_X_REQUEST_ID="lb-1234", HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert response["X-Request-ID"] == "lb-1234" and response.json()["request_id"] == "lb-1234"
    assert not response.has_header("X-Client-Request-ID")
    event = AuditEvent.objects.get(action="auth.login.failed")
    assert (event.request_id, event.client_request_id) == ("lb-1234", None)


@pytest.mark.parametrize("proxies", [0, 1])
@pytest.mark.parametrize("bad", ["has spaces", "x" * 129, "semi;colon", "<script>", "line\nbreak"])
def test_an_insane_incoming_id_is_neither_used_nor_kept(api_client, settings, proxies, bad):
    settings.TRUSTED_PROXY_COUNT = proxies
    user = UserFactory()
    response = failed_login(api_client, user.email, HTTP_X_REQUEST_ID=bad)
    uuid.UUID(response["X-Request-ID"])
    assert not response.has_header("X-Client-Request-ID")
    assert AuditEvent.objects.get(action="auth.login.failed").client_request_id is None


def test_without_a_client_id_nothing_is_echoed_or_kept(api_client, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    response = failed_login(api_client, UserFactory().email)
    assert not response.has_header("X-Client-Request-ID")
    assert AuditEvent.objects.get(action="auth.login.failed").client_request_id is None


@pytest.fixture
def staff_api(api_client, settings):
    from tests.providers.conftest import client_for

    settings.TRUSTED_PROXY_COUNT = 0
    staff = UserFactory(is_staff=True, is_superuser=True)
    return client_for(staff)


@pytest.mark.slow
def test_the_staff_api_filters_and_shows_client_request_ids(api_client, staff_api):
    user = UserFactory()
    failed_login(api_client, user.email, HTTP_X_REQUEST_ID="client-abc")
    failed_login(api_client, user.email, HTTP_X_REQUEST_ID="client-other")
    results = staff_api.get("/api/v1/admin/audit/events", {"client_request_id": "client-abc"}).json()["results"]
    assert [r["client_request_id"] for r in results] == ["client-abc"]
    assert results[0]["action"] == "auth.login.failed"
    # The search box (q) finds it too, as it finds a request id.
    by_q = staff_api.get("/api/v1/admin/audit/events", {"q": "client-abc"}).json()["results"]
    assert [r["client_request_id"] for r in by_q] == ["client-abc"]
    request_id = results[0]["request_id"]
    by_request = staff_api.get("/api/v1/admin/audit/events", {"q": request_id}).json()["results"]
    assert [r["request_id"] for r in by_request] == [request_id]


@pytest.mark.slow
def test_the_admin_search_finds_a_client_request_id(api_client, client, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    staff = UserFactory(is_staff=True, is_superuser=True)
    user = UserFactory()
    failed_login(api_client, user.email, HTTP_X_REQUEST_ID="client-xyz")
    failed_login(api_client, user.email, HTTP_X_REQUEST_ID="client-zzz")
    client.force_login(staff)
    page = client.get("/admin/audit/auditevent/", {"q": "client-xyz"})
    assert page.status_code == 200
    assert list(page.context["cl"].result_list.values_list("client_request_id", flat=True)) == ["client-xyz"]
    event = AuditEvent.objects.get(client_request_id="client-xyz")
    detail = client.get(f"/admin/audit/auditevent/{event.pk}/change/")
    assert b"client-xyz" in detail.content


def test_the_client_request_id_is_covered_by_the_row_hash(api_client, settings):
    from audit import chain

    settings.TRUSTED_PROXY_COUNT = 0
    failed_login(api_client, UserFactory().email, HTTP_X_REQUEST_ID="client-hash")
    event = AuditEvent.objects.get(action="auth.login.failed")
    row = {name: getattr(event, name) for name in chain.ROW_FIELDS}
    assert chain.row_digest_matches(row, event.row_hash)
    row["client_request_id"] = "client-forged"
    assert not chain.row_digest_matches(row, event.row_hash)
