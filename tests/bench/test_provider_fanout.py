"""The beat fan-out that provider_refresh measures: each due connection is queued once,
a few connections per task.

Found by the provider_refresh benchmark: with a backlog longer than one beat
interval, every tick enqueued the same due connections again, and the worker spent
most of its time on tasks that found the token already refreshed. Later: Celery's
per-message work was a large share of each refresh, so one task carries
PROVIDER_REFRESH_TASK_SIZE connections.
"""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

from django.utils import timezone

from bench import seed
from bench.schwab import Ledger


def _due(count):
    users = seed.users_ensure(count=2)
    return seed.provider_connections_reset(count=count, users=users, ledger=Ledger(),
                                           expires_at=timezone.now() + timedelta(seconds=30))


def _enqueued(delay) -> list[str]:
    return [cid for call in delay.call_args_list for cid in call.args[0]]


def test_a_connection_still_queued_is_not_enqueued_again_on_the_next_tick(db, settings):
    from providers import refresh_queue, tasks

    settings.SCHWAB_CLIENT_ID = "bench-client"
    ids = _due(3)
    with mock.patch.object(tasks.refresh_connection_tokens, "delay") as delay:
        assert tasks.refresh_due_tokens() == 3
        assert tasks.refresh_due_tokens() == 0  # all three are still waiting in the queue
        assert sorted(_enqueued(delay)) == sorted(ids)
        # When a refresh ends (here: its connection is gone), its claim goes with it.
        refresh_queue.release(ids[0])
        assert tasks.refresh_due_tokens() == 1
        assert delay.call_args_list[-1].args[0] == [ids[0]]


def test_one_tick_looks_at_most_at_the_batch_setting(db, settings):
    from providers import refresh_queue, tasks
    from providers.models import ProviderToken

    settings.PROVIDER_REFRESH_BATCH = 2
    ids = _due(3)
    with mock.patch.object(tasks.refresh_connection_tokens, "delay") as delay:
        assert tasks.refresh_due_tokens() == 2
        first = _enqueued(delay)
        assert tasks.refresh_due_tokens() == 0  # the window is full of queued work
        # The two refreshes finish: their tokens are fresh and their claims released.
        ProviderToken.objects.filter(connection_id__in=first).update(
            expires_at=timezone.now() + timedelta(hours=1))
        refresh_queue.release(*first)
        assert tasks.refresh_due_tokens() == 1
        assert delay.call_args_list[-1].args[0] == [(set(ids) - set(first)).pop()]


def test_due_connections_are_enqueued_a_few_per_task(db, settings):
    from providers import tasks

    settings.PROVIDER_REFRESH_TASK_SIZE = 4
    ids = _due(10)
    with mock.patch.object(tasks.refresh_connection_tokens, "delay") as delay:
        assert tasks.refresh_due_tokens() == 10
    assert [len(call.args[0]) for call in delay.call_args_list] == [4, 4, 2]
    assert sorted(_enqueued(delay)) == sorted(ids)  # each exactly once


def test_the_task_size_defaults_when_not_set(db, settings):
    from providers import tasks

    if hasattr(settings, "PROVIDER_REFRESH_TASK_SIZE"):
        del settings.PROVIDER_REFRESH_TASK_SIZE
    _due(tasks.DEFAULT_TASK_SIZE + 1)
    with mock.patch.object(tasks.refresh_connection_tokens, "delay") as delay:
        tasks.refresh_due_tokens()
    assert [len(call.args[0]) for call in delay.call_args_list] == [tasks.DEFAULT_TASK_SIZE, 1]


def test_claims_fail_open_when_the_cache_is_down(db, settings):
    from redis.exceptions import ConnectionError as RedisConnectionError

    from providers import refresh_queue, tasks

    ids = _due(2)
    with mock.patch.object(refresh_queue.cache, "add", side_effect=RedisConnectionError("down")), \
            mock.patch.object(refresh_queue, "default_client", side_effect=RedisConnectionError("down")), \
            mock.patch.object(tasks.refresh_connection_tokens, "delay") as delay:
        assert tasks.refresh_due_tokens() == 2  # a duplicate task is harmless; a lost one is not
    assert sorted(_enqueued(delay)) == sorted(ids)


def test_claims_are_kept_in_the_shared_cache_until_released(db, settings):
    from django.core.cache import cache

    from providers import refresh_queue

    ids = _due(3)
    assert refresh_queue.claim_many(ids) == ids
    assert refresh_queue.claim_many(ids + ids[:1]) == []
    assert all(cache.get(refresh_queue.QUEUED_KEY.format(cid)) is not None for cid in ids)
    refresh_queue.release(*ids[:2])
    assert refresh_queue.claim_many(ids) == ids[:2]


def test_with_redis_the_claims_use_the_raw_client(settings):
    """The script path is the one production runs: make sure the cache is recognised."""
    from django.core.cache import caches

    from providers import breaker, refresh_queue

    if not type(caches["default"]).__module__.startswith("django_redis"):
        import pytest

        pytest.skip("the cache is not Redis here")
    assert refresh_queue.default_client() is not None
    assert breaker.default_client() is not None
