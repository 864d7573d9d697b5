"""Fixtures shared by every test package.

Unit tests run Celery eagerly and keep mail in memory (DJANGO_ENV=test). The
integration fixtures here swap in the real parts: a Celery worker consuming
from the real broker, an SMTP server receiving real mail, and a redis-server
of the test's own that a test may kill.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_ENV", "test")

import email  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from email import policy  # noqa: E402

import pytest  # noqa: E402

from tests.browser import browser, browser_page  # noqa: E402, F401 - shared browser fixtures
from tests.factories import UserFactory  # noqa: E402

PASSWORD = "Correct-Horse-9-Battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture
def user(db):
    """A verified, active user whose password is ``PASSWORD``."""
    return UserFactory(password=PASSWORD)


@pytest.fixture
def staff_user(db):
    return UserFactory(password=PASSWORD, is_staff=True, is_superuser=True)


# --- A real SMTP sink --------------------------------------------------------------
class Mailbox:
    """Messages received by the SMTP sink, parsed."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self._cond = threading.Condition()

    def add(self, raw: bytes):
        with self._cond:
            self.messages.append(email.message_from_bytes(raw, policy=policy.default))
            self._cond.notify_all()

    def wait_for(self, count: int = 1, timeout: float = 15.0, to: str | None = None):
        """Block until ``count`` messages (to ``to``, if given) arrived; return them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in self.messages if to is None or to in m["To"]]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} email(s), got {len(found)}")
                self._cond.wait(left)

    @staticmethod
    def text(message) -> str:
        return message.get_body(preferencelist=("plain",)).get_content()

    def clear(self):
        with self._cond:
            self.messages.clear()


@pytest.fixture
def smtp_sink(settings):
    """An aiosmtpd server in this process; Django's SMTP backend points at it."""
    from aiosmtpd.controller import Controller

    box = Mailbox()

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
            box.add(envelope.original_content or envelope.content)
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    try:
        yield box
    finally:
        controller.stop()


# --- A real Celery worker ------------------------------------------------------------
@pytest.fixture
def celery_worker(transactional_db, settings):
    """A Celery worker thread consuming from the configured broker.

    Needs ``transactional_db``: the worker uses its own database connection, so
    it only sees committed rows. Tasks are no longer run eagerly while it is up.
    """
    from celery.contrib.testing.worker import start_worker

    from dashtam.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.task_always_eager = False
    app.control.purge()  # a message left by an earlier test must not run in this one
    try:
        # SQLite's shared in-memory test database answers "table is locked" to
        # concurrent writers instead of waiting: one task at a time there.
        from django.db import connection

        concurrency = 1 if connection.vendor == "sqlite" else 2
        with start_worker(app, pool="threads", concurrency=concurrency, perform_ping_check=False,
                          shutdown_timeout=20) as worker:
            yield worker
    finally:
        app.conf.task_always_eager = True


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.1):
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


# --- A redis-server of the test's own ----------------------------------------------------
class RedisServer:
    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="dashtam-redis-")
        self.proc: subprocess.Popen | None = None

    def start(self):
        exe = shutil.which("redis-server")
        if not exe:
            pytest.skip("redis-server is not installed")
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, test only
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own_redis(settings):
    """Start a private redis-server and point the cache at it; ``.kill()`` it mid-test."""
    server = RedisServer().start()
    settings.REDIS_URL = server.url
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": server.url,
            "KEY_PREFIX": "dashtam-test",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 0.3,
                "SOCKET_TIMEOUT": 0.3,
            },
        }
    }
    # Django's setting_changed handler rebuilds the cache connections.
    try:
        yield server
    finally:
        server.cleanup()


# --- Rate limits: every test counts from zero ---------------------------------------------
@pytest.fixture(autouse=True)
def _fresh_rate_limit_counters():
    """All test requests come from one IP: without this, the login budget (20/m) and
    the catch-all budget would be shared by every test of the run."""
    import uuid

    from accounts import hashers
    from dashtam.ratelimit import counter
    from sessions_mgmt import revocation

    counter.reset_state(namespace=f"rl-test-{uuid.uuid4().hex[:12]}")
    hashers.reset_process_state()  # whether legacy hashes exist is read again from this test's rows
    # A Redis outage in one test must not leave the next one skipping the cache.
    revocation.reset_process_state()
    yield
    counter.reset_state()
    revocation.reset_process_state()
