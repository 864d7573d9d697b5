import time
import uuid

import pytest

from dashtam.ratelimit import counter


@pytest.fixture(autouse=True)
def fresh_counters(monkeypatch):
    """Every test counts from zero under a namespace of its own, on a stopped clock.

    The clock stands still so that no window boundary falls in the middle of a
    test (which would reset a count the test is filling). Tests that travel in
    time patch ``counter._now`` themselves.
    """
    counter.reset_state(namespace=f"rl-test-{uuid.uuid4().hex[:12]}")
    now = time.time()
    monkeypatch.setattr(counter, "_now", lambda: now)
    yield
    counter.reset_state()


@pytest.fixture(params=["default", "own_redis"])
def any_cache(request):
    """Run a test on the configured cache and on a private real Redis."""
    if request.param == "own_redis":
        return request.getfixturevalue("own_redis")
    return None


@pytest.fixture
def locmem_cache(settings):
    """The embedded default's cache, whatever REDIS_URL says (for time travel)."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "rl-tests"}
    }


@pytest.fixture
def rate_rules(settings):
    """The stand-in routes of tests/ratelimit/urls.py under the default rules.

    Call the fixture's value with ``name=rate`` to change rates (``"off"`` disables).
    """
    from dashtam.ratelimit.rule_table import DEFAULT_RATE_RULES

    settings.ROOT_URLCONF = "tests.ratelimit.urls"

    def apply(**rates):
        rules = {name: dict(rule) for name, rule in DEFAULT_RATE_RULES.items()}
        for name, rate in rates.items():
            rules[name]["rate"] = rate
        settings.RATE_LIMIT_RULES = rules
        return rules

    apply()
    return apply


@pytest.fixture
def real_rates(settings):
    """The default rule table on the real routes; call with ``name=rate`` to change rates."""
    from dashtam.ratelimit.rule_table import DEFAULT_RATE_RULES

    def apply(**rates):
        rules = {name: dict(rule) for name, rule in DEFAULT_RATE_RULES.items()}
        for name, rate in rates.items():
            rules[name]["rate"] = rate
        settings.RATE_LIMIT_RULES = rules
        return rules

    apply()
    return apply
