"""The hub's registries: Lua scripts and the cache back-off (dashtam.redis), the readiness
checks and details apps add (dashtam.health), and the rate-limit keys apps read
(dashtam.ratelimit.enforcement)."""

from __future__ import annotations

import pytest

from dashtam import health
from dashtam.ratelimit import enforcement
from dashtam.redis import CacheBackoff, default_client, lua_script, redis_client, registered_scripts


# --- Lua scripts ------------------------------------------------------------------------------
def test_a_script_is_registered_once_by_name():
    first = lua_script("tests.echo", "return ARGV[1]")
    assert lua_script("tests.echo", "return ARGV[1]") is first
    assert registered_scripts()["tests.echo"] is first
    with pytest.raises(ValueError, match="already registered"):
        lua_script("tests.echo", "return KEYS[1]")


def test_the_apps_scripts_are_all_in_the_registry():
    from providers import breaker, refresh_queue  # noqa: F401 - register their scripts on import
    from sessions_mgmt import revocation  # noqa: F401

    assert {"ratelimit.consume", "ratelimit.refund", "sessions.revocation_fill",
            "providers.breaker_close", "providers.refresh_claim"} <= set(registered_scripts())


def test_a_script_loads_itself_on_a_server_that_does_not_know_it(own_redis):
    from django.core.cache import caches

    client = redis_client(caches["default"])
    assert client is not None and default_client() is not None
    script = lua_script("tests.incr", "return redis.call('INCRBY', KEYS[1], ARGV[1])")
    client.script_flush()
    key = caches["default"].make_key("tests:incr")
    assert script(client, keys=[key], args=[2]) == 2  # NOSCRIPT, loaded, run once
    assert script(client, keys=[key], args=[3]) == 5


def test_the_local_memory_cache_has_no_raw_client(settings):
    from django.core.cache import caches

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert redis_client(caches["default"]) is None
    assert default_client() is None


# --- Back-off ---------------------------------------------------------------------------------
def test_the_back_off_rests_for_the_configured_seconds_then_lets_one_try(settings):
    settings.TESTS_RETRY_SECONDS = 5
    clock = [100.0]
    backoff = CacheBackoff("TESTS_RETRY_SECONDS", clock=lambda: clock[0])
    assert not backoff.resting()
    backoff.failed()
    assert backoff.resting()
    clock[0] += 4.9
    assert backoff.resting()
    clock[0] += 0.2
    assert not backoff.resting()
    backoff.failed()
    backoff.reset()
    assert not backoff.resting()


def test_the_back_off_default_applies_when_the_setting_is_absent():
    clock = [0.0]
    backoff = CacheBackoff("TESTS_NO_SUCH_SETTING", default=2, clock=lambda: clock[0])
    backoff.failed()
    clock[0] = 1.9
    assert backoff.resting()
    clock[0] = 2.0
    assert not backoff.resting()


# --- Readiness --------------------------------------------------------------------------------
@pytest.fixture
def readiness_registries(monkeypatch):
    monkeypatch.setattr(health, "_checks", dict(health._checks))
    monkeypatch.setattr(health, "_details", dict(health._details))


@pytest.mark.django_db
def test_providers_add_their_circuit_breakers_to_readiness(client):
    body = client.get("/readyz").json()
    assert list(body) == ["status", "checks", "circuit_breakers"]
    assert isinstance(body["circuit_breakers"], dict)


@pytest.mark.django_db
def test_an_app_check_that_fails_degrades_readiness_but_keeps_200(client, readiness_registries):
    def failing():
        raise RuntimeError("down")

    health.register_readiness_check("search", lambda: "ok")
    health.register_readiness_check("mailer", failing)
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert body["checks"]["search"] == "ok"
    assert body["checks"]["mailer"] == "error: RuntimeError"


@pytest.mark.django_db
def test_a_detail_that_raises_is_shown_empty(client, readiness_registries):
    def broken():
        raise RuntimeError("no")

    health.register_readiness_detail("queues", broken)
    body = client.get("/readyz").json()
    assert body["queues"] == {}


def test_the_hubs_own_names_cannot_be_taken(readiness_registries):
    with pytest.raises(ValueError):
        health.register_readiness_check("database", lambda: "ok")
    with pytest.raises(ValueError):
        health.register_readiness_detail("status", dict)


# --- Rate-limit keys read by apps -------------------------------------------------------------
def test_sessions_register_the_session_key_reader():
    from sessions_mgmt.tokens import refresh_session_id

    assert enforcement._key_readers["session"] is refresh_session_id
    assert enforcement._session({"refresh": "not-a-token"}) is None


def test_the_session_key_uses_the_registered_reader(monkeypatch):
    monkeypatch.setattr(enforcement, "_key_readers", {"session": lambda data: data.get("sid")})
    assert enforcement._session({"sid": "abc"}) == "session:abc"
    assert enforcement._session({}) is None
    monkeypatch.setattr(enforcement, "_key_readers", {})
    assert enforcement._session({"sid": "abc"}) is None  # nobody registered it: counted by IP
