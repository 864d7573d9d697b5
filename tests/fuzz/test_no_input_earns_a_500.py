"""No input earns a 500 (issue 13, section 3): a property test over the whole API.

Every operation of the OpenAPI schema gets arbitrary strings in every query
parameter it documents (and one it does not), arbitrary JSON bodies (deep, wide,
odd types, and objects using the operation's own field names), and path ids that
exist, do not exist or are not ids at all, as a signed-in staff user. The answer
is never a 5xx. The sandbox's transactions endpoint gets the same treatment.

Bounded: HYPOTHESIS_EXAMPLES examples per operation (default 20; a few seconds each).
"""

from __future__ import annotations

import json
import os
import uuid
from functools import lru_cache
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.factories import UserFactory
from tests.providers.conftest import client_for, connect

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "20"))
PROFILE = hsettings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])
METHODS = ("get", "post", "put", "patch", "delete")

# Text a client can send: any code point but lone surrogates (not encodable), NUL included.
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
ODD_TEXT = st.one_of(
    TEXT,
    st.sampled_from(["", " ", "0", "-1", "1e309", "NaN", "null", "true", "[]", "{}", "\x00", "%00", "' OR 1=1 --",
                     "2024-02-30", "2024-13-01", "0000-01-01", "1969-12-31", "9999-12-31T23:59:59-14:00",
                     "0001-01-01T00:00:00+14:00", "2024-01-01T00:00:00", "999999999999999999999",
                     str(uuid.uuid4()), "a" * 5000, "é" * 300, "\u202e", "../../etc/passwd"]),
)
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                   st.floats(allow_nan=False, allow_infinity=False), ODD_TEXT)
ANY_JSON = st.recursive(
    SCALAR,
    lambda children: st.one_of(st.lists(children, max_size=6),
                               st.dictionaries(TEXT, children, max_size=6)),
    max_leaves=25,
)


@lru_cache(maxsize=1)
def schema() -> dict:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def operations() -> list[tuple[str, str]]:
    ops = []
    for path, items in schema()["paths"].items():
        for method in METHODS:
            if method in items:
                ops.append((method, path))
    return ops


def body_fields(op: dict) -> list[str]:
    ref = (((op.get("requestBody") or {}).get("content") or {}).get("application/json") or {}).get("schema") or {}
    if "$ref" in ref:
        ref = schema()["components"]["schemas"][ref["$ref"].rsplit("/", 1)[-1]]
    return sorted((ref.get("properties") or {}).keys())


def bodies(fields: list[str]):
    names = st.sampled_from(fields + ["password", "email", "token", "refresh"])
    shaped = st.dictionaries(names, ANY_JSON, max_size=6)
    deep = st.sampled_from([40, 1000, 5000, 100_000]).map(lambda n: "[" * n + "]" * n)
    deep_objects = st.integers(min_value=30, max_value=1500).map(lambda n: '{"a":' * n + "1" + "}" * n)
    raw = st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
    return st.one_of(
        shaped.map(json.dumps), ANY_JSON.map(json.dumps), deep, deep_objects, raw,
    )


@pytest.fixture
def world(settings, schwab, django_capture_on_commit_callbacks):
    """A staff user with a connected brokerage (accounts and transactions) and a second session."""
    settings.RATELIMIT_ENABLE = False
    settings.CELERY_TASK_ALWAYS_EAGER = True
    user = UserFactory(is_staff=True, is_superuser=True)
    client = client_for(user)
    with django_capture_on_commit_callbacks(execute=True):  # the first sync runs: accounts and transactions
        connection_id = connect(client, schwab)
    from providers.models import FinancialAccount

    account = FinancialAccount.objects.filter(connection_id=connection_id).first()
    client_for(user)  # another session to revoke
    from sessions_mgmt.models import Session

    ids = {
        "connection_id": [connection_id],
        "account_id": [str(account.id)] if account else [],
        "session_id": [str(s) for s in Session.objects.filter(user=user).values_list("id", flat=True)],
        "provider_key": ["schwab", "sandbox", "nope"],
    }
    return user, ids


def path_values(name: str, ids: dict):
    known = ids.get(name, [])
    return st.one_of(st.sampled_from(known + [str(uuid.uuid4())]) if known else st.just(str(uuid.uuid4())),
                     st.sampled_from(["not-a-uuid", "0", "%00", "..", "a" * 300]))


def request_strategy(method: str, path: str, ids: dict):
    op = schema()["paths"][path][method]
    params = op.get("parameters") or []
    query_names = [p["name"] for p in params if p["in"] == "query"] + ["cursor", "page_size", "unexpected"]
    path_names = [p["name"] for p in params if p["in"] == "path"]
    return st.fixed_dictionaries({
        "path": st.fixed_dictionaries({name: path_values(name, ids) for name in path_names}),
        "query": st.dictionaries(st.sampled_from(query_names), ODD_TEXT, max_size=5),
        "body": bodies(body_fields(op)) if method != "get" else st.just(None),
    })


def send(client, method: str, path: str, drawn: dict):
    from urllib.parse import quote

    url = path
    for name, value in drawn["path"].items():
        url = url.replace("{" + name + "}", quote(value, safe=""))
    query = urlencode(drawn["query"])
    if method == "get":
        return client.get(url, drawn["query"])
    return getattr(client, method)(f"{url}?{query}" if query else url, data=drawn["body"],
                                   content_type="application/json")


@pytest.mark.integration
@pytest.mark.parametrize(("method", "path"), operations())
def test_no_input_earns_a_5xx(world, method, path):
    user, ids = world

    @PROFILE
    @given(drawn=request_strategy(method, path, ids))
    def check(drawn):
        client = client_for(user)  # a fresh session: an earlier example may have ended the last one
        response = send(client, method, path, drawn)
        assert response.status_code < 500, (method, path, drawn, response.status_code, response.content[:300])
        if path.startswith("/api/") and response.status_code >= 400:
            assert response["Content-Type"].startswith("application/problem+json")

    check()


@pytest.mark.parametrize(("method", "path"), [("post", "/api/v1/auth/login"), ("get", "/api/v1/auth/me")])
def test_anonymous_and_malformed_credentials_never_earn_a_5xx(db, settings, method, path):
    from rest_framework.test import APIClient

    settings.RATELIMIT_ENABLE = False

    @PROFILE
    @given(header=ODD_TEXT, body=bodies(["email", "password"]))
    def check(header, body):
        client = APIClient()
        raw = ("Bearer " + header).encode("utf-8", "replace").decode("latin-1")
        if method == "get":
            response = client.get(path, HTTP_AUTHORIZATION=raw)
        else:
            response = client.post(path, data=body, content_type="application/json", HTTP_AUTHORIZATION=raw)
        assert response.status_code < 500, (header, body, response.content[:300])

    check()


def test_the_sandbox_transactions_endpoint_never_earns_a_5xx(db, settings):
    from django.core import signing
    from django.test import Client

    from providers.sandbox import views

    settings.SANDBOX_PROVIDER_ENABLED = True
    token = signing.dumps({"sub": "fuzz", "iat": 0, "n": "0"}, salt="dashtam.sandbox.access")
    account_hash = views._accounts("fuzz")[0]["hash"]

    @PROFILE
    @given(query=st.dictionaries(st.sampled_from(["startDate", "endDate", "types"]), ODD_TEXT, max_size=3))
    def check(query):
        response = Client().get(f"/sandbox/trader/v1/accounts/{account_hash}/transactions", query,
                                HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code in (200, 400), (query, response.status_code, response.content[:300])

    check()
