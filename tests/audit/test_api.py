"""GET /api/v1/admin/audit/events: staff only, the admin's filters, cursor pages."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from audit.services import record
from dashtam import context
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/admin/audit/events"


def _login(client: APIClient, user, password: str) -> APIClient:
    response = client.post("/api/v1/auth/login", {"email": user.email, "password": password}, format="json")
    assert response.status_code == 200, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    return client


def _write(request_id: str, *, n: int = 1, action="admin.action", outcome="success", actor=None,
           ip="198.51.100.1"):
    token = context.set_context(context.RequestContext(request_id=request_id, ip=ip))
    try:
        return [record(action=action, outcome=outcome, actor=actor, extra={"i": i}) for i in range(n)]
    finally:
        context.reset(token)


@pytest.fixture
def staff_api(api_client, staff_user, password):
    return _login(api_client, staff_user, password)


def test_non_staff_get_a_problem_403_and_anonymous_a_401(api_client, user, password):
    anonymous = api_client.get(URL)
    assert anonymous.status_code == 401 and anonymous["Content-Type"].startswith("application/problem+json")
    response = _login(api_client, user, password).get(URL)
    assert response.status_code == 403
    assert response.json()["code"] == "PERMISSION_DENIED"


def test_staff_find_every_event_of_one_request(staff_api):
    wanted = _write("req-api-1", n=3)
    _write("req-api-2", n=2)
    response = staff_api.get(URL, {"request_id": "req-api-1"})
    assert response.status_code == 200
    body = response.json()
    assert {e["id"] for e in body["results"]} == {e.pk for e in wanted}
    assert body["results"][0]["request_id"] == "req-api-1" and body["results"][0]["ip"] == "198.51.100.1"
    assert "count" not in body


def test_filters_combine_like_the_admin(staff_api):
    alice = UserFactory(email="alice@example.com")
    failed = _write("r1", action="auth.login.failed", outcome="failure", actor=alice, ip="203.0.113.7")
    _write("r2", action="auth.login.succeeded", actor=alice)
    _write("r3", action="auth.login.failed", outcome="failure")

    def ids(**params):
        response = staff_api.get(URL, params)
        assert response.status_code == 200, response.content
        return {e["id"] for e in response.json()["results"]}

    assert ids(action="auth.login.failed", actor=str(alice.pk)) == {failed[0].pk}
    assert ids(actor_email="ALICE@example.com", outcome="failure") == {failed[0].pk}
    assert ids(ip="203.0.113.7") == {failed[0].pk}
    assert ids(q="203.0.113.7") == {failed[0].pk}
    assert ids(q="r1") == {failed[0].pk}
    assert ids(created_to="2000-01-01") == set()
    assert ids(created_at__lt="2000-01-01") == set() == ids(until="2000-01-01")
    assert ids(search="r1", since="2000-01-01") == {failed[0].pk}


def test_bad_filters_are_a_validation_problem(staff_api):
    response = staff_api.get(URL, {"action": "auth.login.faild", "created_from": "soon", "ip": "nope"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert {"action", "created_from", "ip"} <= set(body["errors"])


def test_cursor_pages_walk_every_event_once(staff_api, django_assert_max_num_queries):
    events = _write("req-pages", n=7)
    seen = []
    url = f"{URL}?request_id=req-pages&page_size=3"
    pages = 0
    while url:
        with django_assert_max_num_queries(12):
            response = staff_api.get(url)
        body = response.json()
        seen += [e["id"] for e in body["results"]]
        url = body["next"]
        pages += 1
    assert pages == 3
    assert seen == sorted((e.pk for e in events), reverse=True)
    assert AuditEvent.objects.count() >= 7


def test_the_endpoint_is_in_the_openapi_schema(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/v1/admin/audit/events"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"action", "outcome", "created_from", "created_to", "request_id", "actor", "actor_email",
            "ip", "q", "cursor"} <= names


def test_staff_need_the_audit_view_permission_as_in_the_admin(api_client, password):
    from django.contrib.auth.models import Permission

    _write("req-perm-1")
    staff = UserFactory(password=password, is_staff=True)
    response = _login(api_client, staff, password).get(URL)
    assert response.status_code == 403
    assert response.json()["code"] == "PERMISSION_DENIED"
    assert "req-perm-1" not in response.content.decode()

    staff.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    response = api_client.get(URL, {"request_id": "req-perm-1"})
    assert response.status_code == 200
    assert [e["request_id"] for e in response.json()["results"]] == ["req-perm-1"]
