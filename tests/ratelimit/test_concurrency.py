"""Concurrent requests against one budget: exactly the limit gets through."""

from __future__ import annotations

import threading

import pytest
from django.db import connections
from django.test import Client

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_concurrent_requests_against_a_limit_admit_exactly_the_limit(own_redis, rate_rules, transactional_db):
    from audit.models import AuditEvent

    limit, threads_count, each = 12, 6, 6
    rate_rules(register=f"{limit}/h")
    barrier = threading.Barrier(threads_count)
    statuses: list[int] = []
    lock = threading.Lock()

    def hammer():
        client = Client()
        barrier.wait()
        try:
            for _ in range(each):
                status = client.post("/api/v1/auth/register", {}, content_type="application/json").status_code
                with lock:
                    statuses.append(status)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=hammer) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(statuses) == threads_count * each
    assert statuses.count(200) == limit
    assert statuses.count(429) == threads_count * each - limit
    assert AuditEvent.objects.filter(action="ratelimit.exceeded").count() == 1
