"""A broker of the test's own: a private redis-server that a test stops and starts again."""

from __future__ import annotations

import pytest

from tests.conftest import RedisServer


def _reset_producers(app) -> None:
    # The next publish opens a connection to the broker now configured.
    app._pool = None  # Celery keeps its broker pools here (see Celery._after_fork)
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


@pytest.fixture
def own_broker(settings):
    """Celery publishes to, and the ``celery_worker`` fixture consumes from, a private
    redis-server; ``.kill()`` stops it mid-test and ``.start()`` brings it back on the same port."""
    from dashtam.celery import app
    from dashtam.outbox import services

    server = RedisServer().start()
    saved = {key: app.conf[key] for key in ("broker_url", "broker_transport_options")}
    app.conf.broker_url = server.url
    app.conf.broker_transport_options = {}
    settings.CELERY_BROKER_URL = server.url
    _reset_producers(app)
    services.reset_process_state()
    try:
        yield server
    finally:
        server.cleanup()
        for key, value in saved.items():
            app.conf[key] = value
        _reset_producers(app)
        services.reset_process_state()
