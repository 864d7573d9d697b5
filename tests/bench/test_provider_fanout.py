"""The beat fan-out that provider_refresh measures: each due connection is queued once.

Found by the provider_refresh benchmark: with a backlog longer than one beat
interval, every tick enqueued the same due connections again, and the worker spent
most of its time on tasks that found the token already refreshed.
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


def test_a_connection_still_queued_is_not_enqueued_again_on_the_next_tick(db, settings):
    from providers import tasks

    settings.SCHWAB_CLIENT_ID = "bench-client"
    ids = _due(3)
    with mock.patch.object(tasks.refresh_connection_token, "delay") as delay:
        assert tasks.refresh_due_tokens() == 3
        assert tasks.refresh_due_tokens() == 0  # all three are still waiting in the queue
        assert sorted(call.args[0] for call in delay.call_args_list) == sorted(ids)
        # When a task ends (here: its connection is gone), its claim goes with it.
        tasks._release(ids[0])
        assert tasks.refresh_due_tokens() == 1
        assert delay.call_args_list[-1].args[0] == ids[0]


def test_one_tick_looks_at_most_at_the_batch_setting(db, settings):
    from providers import tasks
    from providers.models import ProviderToken

    settings.PROVIDER_REFRESH_BATCH = 2
    ids = _due(3)
    with mock.patch.object(tasks.refresh_connection_token, "delay") as delay:
        assert tasks.refresh_due_tokens() == 2
        first = [call.args[0] for call in delay.call_args_list]
        assert tasks.refresh_due_tokens() == 0  # the window is full of queued work
        # The two tasks finish: their tokens are fresh and their claims released.
        ProviderToken.objects.filter(connection_id__in=first).update(
            expires_at=timezone.now() + timedelta(hours=1))
        for cid in first:
            tasks._release(cid)
        assert tasks.refresh_due_tokens() == 1
        assert delay.call_args_list[-1].args[0] == (set(ids) - set(first)).pop()
