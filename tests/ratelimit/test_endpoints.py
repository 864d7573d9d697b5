"""The rules on the real endpoints: login with the lockout, reset, refresh, the API, an outage."""

from __future__ import annotations

import pytest

from tests.factories import UserFactory

LOGIN = "/api/v1/auth/login"
RESET = "/api/v1/auth/request-password-reset"
RESEND = "/api/v1/auth/resend-verification"
REGISTER = "/api/v1/auth/register"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/auth/me"


def code(response) -> str | None:
    if response["Content-Type"].startswith("application/problem+json"):
        return response.json()["code"]
    return None


def log_in(client, user, password, **extra):
    response = client.post(LOGIN, {"email": user.email, "password": password}, format="json", **extra)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db
@pytest.mark.slow
def test_hammering_one_account_shows_account_locked_never_rate_limited(real_rates, api_client, user, password):
    codes = [code(api_client.post(LOGIN, {"email": user.email, "password": "Wrong-Horse-1-Battery"},
                                  format="json")) for _ in range(25)]

    assert codes[0] == "INVALID_CREDENTIALS"
    assert "RATE_LIMITED" not in codes
    assert codes[-6:] == ["ACCOUNT_LOCKED"] * 6  # requests 20-25 are over the 20/m login budget
    right_password = api_client.post(LOGIN, {"email": user.email, "password": password}, format="json")
    assert code(right_password) == "ACCOUNT_LOCKED"
    assert int(right_password["Retry-After"]) > 60

    other = api_client.post(LOGIN, {"email": "nobody@example.com", "password": "x"}, format="json")
    assert code(other) == "RATE_LIMITED"
    assert 1 <= int(other["Retry-After"]) <= 60


@pytest.mark.django_db
@pytest.mark.slow
def test_hammering_login_across_accounts_gets_exactly_twenty_a_minute_per_ip(real_rates, api_client):
    responses = [api_client.post(LOGIN, {"email": f"n{n}@example.com", "password": "x"}, format="json")
                 for n in range(21)]
    assert [code(r) for r in responses] == ["INVALID_CREDENTIALS"] * 20 + ["RATE_LIMITED"]
    assert responses[19]["X-RateLimit-Remaining"] == "0"
    assert responses[20]["X-RateLimit-Limit"] == "20"


@pytest.mark.django_db
@pytest.mark.slow
def test_many_ips_each_get_their_own_login_budget(real_rates, api_client):
    responses = [api_client.post(LOGIN, {"email": f"n{n}@example.com", "password": "x"}, format="json",
                                 REMOTE_ADDR=f"198.51.100.{n}") for n in range(30)]
    assert {code(r) for r in responses} == {"INVALID_CREDENTIALS"}
    assert {r["X-RateLimit-Remaining"] for r in responses} == {"19"}


@pytest.mark.django_db
def test_password_reset_requests_get_five_an_hour_per_ip_and_three_per_email(real_rates, api_client, user):
    per_ip = [api_client.post(RESET, {"email": f"r{n}@example.com"}, format="json") for n in range(6)]
    assert [r.status_code for r in per_ip] == [202] * 5 + [429]
    assert code(per_ip[-1]) == "RATE_LIMITED"
    assert 3500 < int(per_ip[-1]["Retry-After"]) <= 3600

    per_email = [api_client.post(RESET, {"email": user.email.upper()}, format="json",
                                 REMOTE_ADDR=f"203.0.113.{n}") for n in range(4)]
    assert [r.status_code for r in per_email] == [202, 202, 202, 429]


@pytest.mark.django_db
def test_resend_verification_gets_three_an_hour_per_email_and_register_ten_per_ip(real_rates, api_client):
    resend = [api_client.post(RESEND, {"email": "new@example.com"}, format="json",
                              REMOTE_ADDR=f"203.0.113.{n}") for n in range(4)]
    assert [r.status_code for r in resend] == [202, 202, 202, 429]

    # One client mailing many addresses gets ten an hour.
    many = [api_client.post(RESEND, {"email": f"other{n}@example.com"}, format="json",
                            REMOTE_ADDR="198.51.100.7") for n in range(11)]
    assert [r.status_code for r in many] == [202] * 10 + [429]

    register = [api_client.post(REGISTER, {"email": f"new{n}@example.com", "password": "x"}, format="json")
                for n in range(11)]
    assert code(register[-1]) == "RATE_LIMITED"
    assert all(code(r) != "RATE_LIMITED" for r in register[:10])


@pytest.mark.django_db
def test_authenticated_endpoints_count_per_user_and_show_the_tightest_rule(real_rates, api_client, user, password):
    tokens = log_in(api_client, user, password)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")

    me = api_client.get(ME)
    assert me.status_code == 200
    assert me["X-RateLimit-Limit"] == "1000"
    sessions = api_client.get("/api/v1/auth/sessions")
    assert sessions.status_code == 200
    assert (sessions["X-RateLimit-Limit"], sessions["X-RateLimit-Remaining"]) == ("30", "29")


@pytest.mark.django_db
def test_the_session_endpoints_get_thirty_a_minute_per_user(real_rates, api_client, user, password):
    real_rates(sessions="3/m")
    tokens = log_in(api_client, user, password)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    statuses = [api_client.get("/api/v1/auth/sessions").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    # Another user from the same IP has a budget of their own.
    other = UserFactory(password=password)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {log_in(api_client, other, password)['access']}")
    assert api_client.get("/api/v1/auth/sessions").status_code == 200


@pytest.mark.django_db
def test_refresh_is_counted_per_session(real_rates, api_client, user, password):
    real_rates(refresh="2/m")
    first = log_in(api_client, user, password)
    second = log_in(api_client, user, password)

    refresh = first["refresh"]
    for _ in range(2):
        response = api_client.post(REFRESH, {"refresh": refresh}, format="json")
        assert response.status_code == 200, response.content
        refresh = response.json()["refresh"]
    refused = api_client.post(REFRESH, {"refresh": refresh}, format="json")
    assert code(refused) == "RATE_LIMITED"
    assert api_client.post(REFRESH, {"refresh": second["refresh"]}, format="json").status_code == 200
    # The refused token was not consumed: it still works once the window frees up.
    real_rates(refresh="10/m")
    assert api_client.post(REFRESH, {"refresh": refresh}, format="json").status_code == 200


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_redis_outage_degrades_to_unlimited_never_to_broken(own_redis, real_rates, api_client, user, password):
    real_rates(login="3/m")
    tokens = log_in(api_client, user, password)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert api_client.get(ME).status_code == 200

    own_redis.kill()
    statuses = [api_client.get(ME).status_code for _ in range(5)]
    api_client.credentials()
    statuses += [api_client.post(LOGIN, {"email": user.email, "password": password}, format="json").status_code
                 for _ in range(5)]
    assert statuses == [200] * 10  # login is over its 3/m budget, but uncounted while Redis is down


def _redis_commands(url: str) -> dict[str, int]:
    import redis

    stats = redis.Redis.from_url(url).info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_an_authenticated_request_is_checked_and_counted_in_one_redis_round_trip(
        own_redis, real_rates, api_client, user, password):
    import redis

    real_rates(api="5/m")
    tokens = log_in(api_client, user, password)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    first = api_client.get(ME)  # fills the revocation cache from the database
    assert first.status_code == 200
    redis.Redis.from_url(own_redis.url).config_resetstat()

    second = api_client.get(ME)

    assert second.status_code == 200
    # One script reads the session, the user and the global version (and the cache
    # generation) and counts the request; nothing else reached Redis.
    commands = _redis_commands(own_redis.url)
    for ours in ("config|resetstat", "hello", "info"):  # this test's own connection
        commands.pop(ours, None)
    assert commands == {"evalsha": 1, "get": 4, "incr": 1, "pttl": 1}
    # Counted once, not twice, although authentication and the throttle both ran.
    assert (first["X-RateLimit-Remaining"], second["X-RateLimit-Remaining"]) == ("4", "3")
    statuses = [api_client.get(ME) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert code(statuses[-1]) == "RATE_LIMITED" and 1 <= int(statuses[-1]["Retry-After"]) <= 60


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_revoked_token_is_refused_and_spends_nothing_of_its_users_budget(own_redis, real_rates, api_client,
                                                                           user, password):
    real_rates(api="100/m")
    tokens = log_in(api_client, user, password)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert api_client.get(ME)["X-RateLimit-Remaining"] == "99"
    assert api_client.get(ME)["X-RateLimit-Remaining"] == "98"  # answered from the cache now
    logout = api_client.post("/api/v1/auth/logout", {"refresh": tokens["refresh"]}, format="json")
    assert logout.status_code in (200, 204)  # the catch-all budget counts it: 97 left

    refused = [api_client.get(ME) for _ in range(5)]

    # Whoever holds the revoked token cannot exhaust the user's budget with it.
    assert {(r.status_code, code(r)) for r in refused} == {(401, "SESSION_REVOKED")}
    assert not any(r.has_header("X-RateLimit-Remaining") for r in refused)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {log_in(api_client, user, password)['access']}")
    assert api_client.get(ME)["X-RateLimit-Remaining"] == "96"
