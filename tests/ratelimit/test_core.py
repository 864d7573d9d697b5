"""consume(): exact counting, honest reset times, fail-open on a dead Redis."""

from __future__ import annotations

import logging
import threading

import pytest

from dashtam.ratelimit import counter
from dashtam.ratelimit.counter import consume, consume_many, parse_rate
from dashtam.ratelimit.registry import limited_key_clear, limited_keys


@pytest.mark.parametrize(
    ("rate", "expected"),
    [("20/m", (20, 60)), ("5/15m", (5, 900)), ("1000/h", (1000, 3600)), ("3/d", (3, 86400)), ("7/s", (7, 1))],
)
def test_rates_are_parsed_like_django_ratelimit(rate, expected):
    assert parse_rate(rate) == expected


@pytest.mark.parametrize("rate", ["", "abc", "0/m", "-1/m", "10/x", "10 per minute", "/m"])
def test_a_malformed_rate_is_refused(rate):
    with pytest.raises(ValueError, match="not a rate"):
        parse_rate(rate)


def test_consume_admits_exactly_the_limit_then_refuses_until_the_window_frees_up(any_cache):
    decisions = [consume("test:exact", "3/m") for _ in range(5)]

    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0, 0]
    assert all(d.limit == 3 for d in decisions)
    assert all(0 < d.reset_in <= 60 for d in decisions)
    assert [d.newly_limited for d in decisions] == [False, False, False, True, False]
    assert not any(d.degraded for d in decisions)


def test_keys_and_rates_are_counted_separately(any_cache):
    for _ in range(2):
        consume("test:a", "2/m")
    assert not consume("test:a", "2/m").allowed
    assert consume("test:b", "2/m").allowed
    assert consume("test:a", "5/h").allowed  # another rule over the same key


def test_consume_many_counts_every_pair_in_one_call(any_cache):
    first = consume_many([("test:ip", "1/m"), ("test:user", "2/m")])
    second = consume_many([("test:ip", "1/m"), ("test:user", "2/m")])

    assert [d.allowed for d in first] == [True, True]
    assert [d.allowed for d in second] == [False, True]
    assert [d.remaining for d in second] == [0, 0]


def test_the_window_starts_at_the_first_hit_and_frees_up_reset_in_seconds_later(locmem_cache, monkeypatch):
    clock = [1_000_000.0]
    monkeypatch.setattr(counter, "_now", lambda: clock[0])
    consume("test:window", "1/m")
    refused = consume("test:window", "1/m")
    assert not refused.allowed
    assert refused.reset_in == 60

    clock[0] += 45
    assert consume("test:window", "1/m").reset_in == 15
    clock[0] += 14.5
    assert not consume("test:window", "1/m").allowed
    clock[0] += 0.6
    again = consume("test:window", "1/m")
    assert again.allowed
    assert again.reset_in == 60


def test_reset_in_is_the_counters_real_ttl_on_redis(own_redis):
    from django.core.cache import cache

    first = consume("test:ttl", "1/h")
    assert first.reset_in == 3600
    client = cache.client.get_client(write=True)
    name = cache.make_key(counter.counter_key("test:ttl", 1, 3600))
    assert 3599_000 <= client.pttl(name) <= 3600_000
    client.pexpire(name, 12_300)

    refused = consume("test:ttl", "1/h")
    assert not refused.allowed
    assert refused.reset_in == 13


def test_concurrent_hits_admit_exactly_the_limit(any_cache):
    limit, threads_count, hits_each = 25, 8, 10
    barrier = threading.Barrier(threads_count)
    admitted: list[bool] = []
    lock = threading.Lock()

    def hammer():
        barrier.wait()
        for _ in range(hits_each):
            decision = consume("test:race", f"{limit}/h")
            with lock:
                admitted.append(decision.allowed)

    threads = [threading.Thread(target=hammer) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(admitted) == threads_count * hits_each
    assert sum(admitted) == limit


def test_limited_keys_lists_what_is_over_its_limit_and_clearing_unblocks_it(any_cache):
    consume("test:quiet", "5/m")
    for _ in range(3):
        consume("test:noisy", "2/m")

    listed = limited_keys()
    assert [(k.key, k.limit, k.period, k.count) for k in listed] == [("test:noisy", 2, 60, 3)]
    assert 0 < listed[0].reset_in <= 60

    assert limited_key_clear(key="test:noisy", rate="2/m") is True
    assert limited_keys() == []
    assert consume("test:noisy", "2/m").allowed
    assert limited_key_clear(key="test:gone", rate="2/m") is False


def test_disabled_rate_limits_admit_everything(settings):
    settings.RATELIMIT_ENABLE = False
    assert all(consume("test:off", "1/m").allowed for _ in range(5))


def test_a_dead_redis_fails_open_and_warns_once(own_redis, caplog):
    assert consume("test:outage", "2/m").allowed
    own_redis.kill()

    with caplog.at_level(logging.WARNING, logger="dashtam.ratelimit"):
        decisions = [consume("test:outage", "2/m") for _ in range(5)]
        assert limited_keys() == []

    assert all(d.allowed and d.degraded for d in decisions)
    warnings = [r for r in caplog.records if r.name == "dashtam.ratelimit"]
    assert len(warnings) == 1
    assert "failing open" in warnings[0].getMessage()


def test_after_a_failure_the_cache_rests_then_counting_resumes(own_redis, monkeypatch, settings):
    settings.RATELIMIT_CACHE_RETRY_SECONDS = 5
    clock = [500.0]
    monkeypatch.setattr(counter, "_monotonic", lambda: clock[0])
    calls = []
    real = counter._consume_redis

    def flaky(cache, client, items):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("redis went away")
        return real(cache, client, items)

    monkeypatch.setattr(counter, "_consume_redis", flaky)
    assert consume("test:rest", "1/m").degraded
    assert consume("test:rest", "5/m").degraded  # resting: the cache is not tried
    assert len(calls) == 1

    clock[0] += 5.1
    resumed = consume("test:rest", "1/m")
    assert not resumed.degraded
    assert resumed.allowed
    assert not consume("test:rest", "1/m").allowed
