"""Gauges read at scrape time: what is true now, not what a process last saw.

Readings only an app can take are registered by that app from its ``AppConfig.ready``
(:func:`register_state_reader`), so the hub imports no app: providers registers
``circuit_breakers`` and ``token_refresh_lag_seconds``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client.core import GaugeMetricFamily

from dashtam.observability.metrics import PREFIX

logger = logging.getLogger("dashtam.metrics")

BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}

# name -> reader, called at every scrape.
_readers: dict[str, Callable[[], object]] = {}


def register_state_reader(name: str, reader: Callable[[], object]) -> None:
    """Let a gauge read ``name`` from ``reader()`` at scrape time. A reading nobody
    registered is left out of the scrape (its family is reported empty)."""
    _readers[name] = reader


class StateCollector:
    """Circuit-breaker state per provider, token refresh lag, and Celery queue depth.

    Each reading is independent: one that fails (a broker or cache down) is left
    out of this scrape and logged; the others are still reported.
    """

    def collect(self):
        yield from self._breakers()
        yield from self._refresh_lag()
        yield from self._queue_depth()

    def _breakers(self):
        family = GaugeMetricFamily(
            f"{PREFIX}_circuit_breaker_state",
            "Provider circuit breaker: 0 closed, 1 half-open, 2 open.", labels=["provider"])
        failures = GaugeMetricFamily(
            f"{PREFIX}_circuit_breaker_failures", "Consecutive failures counted by a provider's breaker.",
            labels=["provider"])
        reader = _readers.get("circuit_breakers")
        try:
            for key, current in (reader() if reader is not None else {}).items():
                family.add_metric([key], BREAKER_VALUES.get(current["state"], 0))
                failures.add_metric([key], current["failures"])
        except Exception:  # noqa: BLE001 - a scrape reports what it can
            logger.warning("metrics: circuit breaker states unavailable")
        yield family
        yield failures

    def _refresh_lag(self):
        family = GaugeMetricFamily(
            f"{PREFIX}_provider_token_refresh_lag_seconds",
            "How long the oldest connection due for a token refresh has been waiting (0 when none is late).")
        reader = _readers.get("token_refresh_lag_seconds")
        try:
            if reader is not None:
                family.add_metric([], reader())
        except Exception:  # noqa: BLE001
            logger.warning("metrics: token refresh lag unavailable")
        yield family

    def _queue_depth(self):
        from django.conf import settings

        family = GaugeMetricFamily(
            f"{PREFIX}_celery_queue_depth", "Messages waiting in a Celery queue.", labels=["queue"])
        try:
            from dashtam.celery import app

            with app.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1)
                channel = conn.default_channel
                for queue in settings.METRICS_CELERY_QUEUES:
                    try:
                        _, depth, _ = channel.queue_declare(queue=queue, passive=True)
                    except Exception:  # noqa: BLE001 - a queue nobody declared yet holds nothing
                        depth = 0
                    family.add_metric([queue], depth)
        except Exception:  # noqa: BLE001
            logger.warning("metrics: Celery queue depth unavailable")
        yield family
