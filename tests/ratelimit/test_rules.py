"""The rule table applied to the API: budgets, keys, honest 429s, headers, audit, admin."""

from __future__ import annotations

import time
import uuid

from rest_framework_simplejwt.state import token_backend

from dashtam.ratelimit import counter, enforcement
from tests.factories import UserFactory
from tests.ratelimit.urls import LOCKED_EMAIL

LOGIN = "/api/v1/auth/login"
RESET = "/api/v1/auth/request-password-reset"
REFRESH = "/api/v1/auth/refresh"


def login(client, email="someone@example.com", **extra):
    return client.post(LOGIN, {"email": email, "password": "wrong"}, format="json", **extra)


def assert_rate_limited(response, *, limit: int):
    assert response.status_code == 429
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "RATE_LIMITED"
    assert body["status"] == 429
    assert body["request_id"] == response["X-Request-ID"]
    assert 1 <= int(response["Retry-After"]) <= 3600
    assert response["X-RateLimit-Limit"] == str(limit)
    assert response["X-RateLimit-Remaining"] == "0"
    assert response["X-RateLimit-Reset"] == response["Retry-After"]


def test_login_admits_twenty_a_minute_per_ip_then_answers_an_honest_429(rate_rules, api_client):
    responses = [login(api_client) for _ in range(21)]

    assert [r.status_code for r in responses[:20]] == [200] * 20
    assert [r["X-RateLimit-Remaining"] for r in responses[:20]] == [str(n) for n in range(19, -1, -1)]
    assert all(r["X-RateLimit-Limit"] == "20" for r in responses[:20])
    assert 1 <= int(responses[0]["X-RateLimit-Reset"]) <= 60
    assert_rate_limited(responses[20], limit=20)
    assert int(responses[20]["Retry-After"]) <= 60


def test_retry_after_is_the_real_number_of_seconds_until_the_window_frees_up(
    rate_rules, locmem_cache, api_client, monkeypatch
):
    rate_rules(login="2/m")
    clock = [time.time()]
    monkeypatch.setattr(counter, "_now", lambda: clock[0])
    login(api_client)
    clock[0] += 20
    login(api_client)
    clock[0] += 15
    refused = login(api_client)
    assert refused.status_code == 429
    wait = int(refused["Retry-After"])
    assert wait == 25

    clock[0] += wait - 1
    still = login(api_client)
    assert still.status_code == 429
    assert still["Retry-After"] == "1"
    clock[0] += 1
    assert login(api_client).status_code == 200


def test_a_forged_x_forwarded_for_does_not_buy_a_fresh_budget(rate_rules, api_client, settings):
    rate_rules(login="3/m")
    for n in range(3):
        assert login(api_client, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code == 200
    assert_rate_limited(login(api_client, HTTP_X_FORWARDED_FOR="198.51.100.99"), limit=3)


def test_behind_a_trusted_proxy_only_the_proxy_supplied_address_counts(rate_rules, api_client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    rate_rules(login="2/m")
    for forged in ("1.1.1.1", "2.2.2.2"):
        # The proxy appends the real client (203.0.113.7); whatever came before is the client's.
        assert login(api_client, HTTP_X_FORWARDED_FOR=f"{forged}, 203.0.113.7").status_code == 200
    assert login(api_client, HTTP_X_FORWARDED_FOR="3.3.3.3, 203.0.113.7").status_code == 429
    assert login(api_client, HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 200


def test_each_client_ip_gets_its_own_budget_and_ipv6_counts_per_64(rate_rules, api_client):
    rate_rules(login="1/m")
    assert login(api_client, REMOTE_ADDR="192.0.2.1").status_code == 200
    assert login(api_client, REMOTE_ADDR="192.0.2.1").status_code == 429
    assert login(api_client, REMOTE_ADDR="192.0.2.2").status_code == 200
    assert login(api_client, REMOTE_ADDR="2001:db8:1:2::1").status_code == 200
    assert login(api_client, REMOTE_ADDR="2001:db8:1:2::ffff").status_code == 429
    assert login(api_client, REMOTE_ADDR="2001:db8:1:3::1").status_code == 200


def test_user_keyed_rules_count_each_user_separately_from_one_ip(rate_rules, api_client, db):
    rate_rules(sessions="2/m")
    alice, bob = UserFactory(), UserFactory()
    api_client.force_authenticate(alice)
    assert [api_client.get("/api/v1/auth/sessions").status_code for _ in range(3)] == [200, 200, 429]
    api_client.force_authenticate(bob)
    response = api_client.get("/api/v1/auth/sessions")
    assert response.status_code == 200
    assert response["X-RateLimit-Limit"] == "2"
    assert response["X-RateLimit-Remaining"] == "1"


def test_the_catch_all_rule_counts_users_by_user_and_anonymous_clients_by_ip(rate_rules, api_client, db):
    rate_rules(api="2/m")
    user = UserFactory()
    api_client.force_authenticate(user)
    assert [api_client.get("/api/v1/auth/me").status_code for _ in range(3)] == [200, 200, 429]
    api_client.force_authenticate(None)
    assert [api_client.get("/api/v1/auth/register").status_code for _ in range(3)] == [200, 200, 429]


def test_the_tightest_rule_shows_in_the_headers(rate_rules, api_client, db):
    rate_rules(providers="5/m", api="3/m")
    api_client.force_authenticate(UserFactory())
    first = api_client.get("/api/v1/providers")
    assert (first["X-RateLimit-Limit"], first["X-RateLimit-Remaining"]) == ("3", "2")


def test_password_reset_counts_per_normalised_email_as_well_as_per_ip(rate_rules, api_client, db):
    rate_rules(password_reset_email="2/h", password_reset_ip="10/h")
    assert api_client.post(RESET, {"email": "Ada@Example.com"}, format="json").status_code == 200
    assert api_client.post(RESET, {"email": "  ada@example.COM "}, format="json").status_code == 200
    refused = api_client.post(RESET, {"email": "ada@example.com"}, format="json")
    assert_rate_limited(refused, limit=2)
    assert 3500 < int(refused["Retry-After"]) <= 3600
    assert api_client.post(RESET, {"email": "grace@example.com"}, format="json").status_code == 200


def test_password_reset_ip_budget_holds_across_many_emails(rate_rules, api_client):
    responses = [api_client.post(RESET, {"email": f"u{n}@example.com"}, format="json") for n in range(6)]
    assert [r.status_code for r in responses] == [200] * 5 + [429]


def _refresh_token(session_id: str) -> str:
    return token_backend.encode({"token_type": "refresh", "sid": session_id, "user_id": str(uuid.uuid4()),
                                 "ver": 0, "jti": uuid.uuid4().hex, "exp": 4_000_000_000})


def test_refresh_counts_per_session_and_a_forged_session_id_counts_by_ip(rate_rules, api_client):
    rate_rules(refresh="2/m")
    mine, other = str(uuid.uuid4()), str(uuid.uuid4())
    for _ in range(2):
        assert api_client.post(REFRESH, {"refresh": _refresh_token(mine)}, format="json").status_code == 200
    assert api_client.post(REFRESH, {"refresh": _refresh_token(mine)}, format="json").status_code == 429
    assert api_client.post(REFRESH, {"refresh": _refresh_token(other)}, format="json").status_code == 200

    header, payload, _ = _refresh_token(mine).split(".")
    forged = f"{header}.{payload}.c2lnbmF0dXJl"
    # Not signed by us: counted by IP, so it neither spends nor escapes "mine"'s budget.
    assert [api_client.post(REFRESH, {"refresh": forged}, format="json").status_code
            for _ in range(3)] == [200, 200, 429]
    assert api_client.post(REFRESH, {"refresh": "not-a-jwt"}, format="json").status_code == 429


def test_a_locked_account_is_answered_account_locked_not_rate_limited(rate_rules, api_client, monkeypatch):
    rate_rules(login="2/m")
    monkeypatch.setattr(enforcement, "account_is_locked", lambda request, email: email == LOCKED_EMAIL)
    assert login(api_client).status_code == 200
    assert login(api_client).status_code == 200

    locked = login(api_client, email=LOCKED_EMAIL)
    assert locked.status_code == 429
    assert locked.json()["code"] == "ACCOUNT_LOCKED"
    assert int(locked["Retry-After"]) > 60
    assert_rate_limited(login(api_client, email="another@example.com"), limit=2)


def test_a_violation_writes_one_audit_event_per_key_per_window(
    rate_rules, locmem_cache, api_client, monkeypatch, db
):
    from audit.models import AuditEvent

    rate_rules(login="2/m")
    clock = [time.time()]
    monkeypatch.setattr(counter, "_now", lambda: clock[0])
    statuses = [login(api_client).status_code for _ in range(7)]
    assert statuses == [200, 200] + [429] * 5

    events = list(AuditEvent.objects.filter(action="ratelimit.exceeded"))
    assert len(events) == 1
    event = events[0]
    assert event.outcome == "denied"
    assert event.ip == "127.0.0.1"
    assert event.extra["rule"] == "login"
    assert event.extra["key"] == "login:ip:127.0.0.1"
    assert event.extra["limit"] == 2
    assert event.extra["window_seconds"] == 60
    assert event.request_id

    login(api_client, REMOTE_ADDR="192.0.2.50")
    login(api_client, REMOTE_ADDR="192.0.2.50")
    login(api_client, REMOTE_ADDR="192.0.2.50")
    clock[0] += 61
    for _ in range(4):
        login(api_client)
    assert AuditEvent.objects.filter(action="ratelimit.exceeded").count() == 3


def test_unknown_api_paths_spend_the_catch_all_budget(rate_rules, api_client):
    rate_rules(api="2/m")
    statuses = [api_client.get("/api/v1/no-such-thing").status_code for _ in range(3)]
    assert statuses == [404, 404, 429]


def test_a_plain_django_view_under_the_api_is_limited_too(rate_rules, api_client):
    rate_rules(oauth_callback="2/m")
    url = "/api/v1/providers/oauth/sandbox/callback?code=x&state=y"
    first = api_client.get(url)
    assert first.status_code == 200
    assert first["X-RateLimit-Limit"] == "2"
    api_client.get(url)
    assert_rate_limited(api_client.get(url), limit=2)


def test_a_rule_set_off_and_rate_limits_disabled_admit_everything(rate_rules, api_client, settings):
    rate_rules(login="off", api="off")
    responses = [login(api_client) for _ in range(25)]
    assert {r.status_code for r in responses} == {200}
    assert not responses[0].has_header("X-RateLimit-Limit")

    rate_rules(login="1/m")
    settings.RATELIMIT_ENABLE = False
    responses = [login(api_client) for _ in range(3)]
    assert {r.status_code for r in responses} == {200}
    assert not responses[0].has_header("X-RateLimit-Limit")


def test_a_view_without_the_throttle_carries_no_rate_limit_headers(rate_rules, api_client):
    response = api_client.get("/api/v1/unthrottled")
    assert response.status_code == 200
    assert not response.has_header("X-RateLimit-Limit")


def test_staff_see_the_keys_limited_right_now_in_the_admin(rate_rules, client, staff_user, password):
    rate_rules(login="1/m")
    for _ in range(3):
        client.post(LOGIN, {"email": "x@example.com"}, content_type="application/json",
                    REMOTE_ADDR="198.51.100.23")

    client.force_login(staff_user)
    page = client.get("/admin/dashtam_ratelimit/limitedkey/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "198.51.100.23" in html
    assert "1 per 60s" in html

    index = client.get("/admin/")
    assert "/admin/dashtam_ratelimit/limitedkey/" in index.content.decode()


def test_staff_see_users_by_email_and_other_people_cannot_see_the_page(rate_rules, client, api_client, db):
    rate_rules(sessions="1/m")
    limited = UserFactory(email="limited@example.com")
    api_client.force_authenticate(limited)
    api_client.get("/api/v1/auth/sessions")
    api_client.get("/api/v1/auth/sessions")

    client.force_login(UserFactory())
    assert client.get("/admin/dashtam_ratelimit/limitedkey/").status_code == 302

    client.force_login(UserFactory(is_staff=True))
    html = client.get("/admin/dashtam_ratelimit/limitedkey/").content.decode()
    assert "limited@example.com" in html


def test_drf_views_outside_the_api_are_not_counted(rate_rules, api_client):
    rate_rules(api="1/m")
    responses = [api_client.get("/sandbox/page") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert not responses[0].has_header("X-RateLimit-Limit")


def test_a_rule_table_set_again_is_obeyed_at_once_even_when_edited_in_place(rate_rules, api_client, settings):
    rules = rate_rules()
    assert login(api_client)["X-RateLimit-Limit"] == "20"
    rules["login"]["rate"] = "1/m"  # the same table object, edited: read again once set again
    settings.RATE_LIMIT_RULES = rules  # fires setting_changed, as override_settings does
    assert login(api_client)["X-RateLimit-Limit"] == "1"


def test_a_superuser_can_unblock_a_key_and_it_is_audited(rate_rules, client, api_client, staff_user):
    from audit.models import AuditEvent

    rate_rules(login="1/m")
    login(api_client)
    assert login(api_client).status_code == 429

    client.force_login(staff_user)
    page = client.get("/admin/dashtam_ratelimit/limitedkey/").content.decode()
    assert 'value="Unblock"' in page
    response = client.post("/admin/dashtam_ratelimit/limitedkey/",
                           {"key": "login:ip:127.0.0.1", "rate": "1/60s"})
    assert response.status_code == 302

    assert login(api_client).status_code == 200
    event = AuditEvent.objects.get(action="admin.action")
    assert event.extra["action"] == "ratelimit.unblock"
    assert event.extra["key"] == "login:ip:127.0.0.1"
    assert str(event.actor_id) == str(staff_user.pk)


def test_staff_who_are_not_superusers_can_look_but_not_unblock(rate_rules, client, api_client, db):
    rate_rules(login="1/m")
    login(api_client)
    login(api_client)
    client.force_login(UserFactory(is_staff=True))
    assert 'value="Unblock"' not in client.get("/admin/dashtam_ratelimit/limitedkey/").content.decode()
    response = client.post("/admin/dashtam_ratelimit/limitedkey/", {"key": "login:ip:127.0.0.1", "rate": "1/60s"})
    assert response.status_code == 403
    assert login(api_client).status_code == 429


def test_outbound_budgets_are_listed_for_staff_too(client, staff_user):
    for _ in range(3):
        counter.consume("provider-out:schwab", "2/m")
    client.force_login(staff_user)
    html = client.get("/admin/dashtam_ratelimit/limitedkey/").content.decode()
    assert "provider-out" in html
    assert "schwab" in html
