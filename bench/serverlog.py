"""Server time per request, read from the access lines the server logs anyway.

RequestContextMiddleware, first in MIDDLEWARE, logs one JSON line per request with
its request id and ``duration_ms``: the time Django spent, without the network.
"""

from __future__ import annotations

import json
from pathlib import Path


def durations(log_path: Path, request_ids: set[str]) -> dict[str, float]:
    """{request_id: duration_ms} for the given ids found in the log.

    The bench sends its own X-Request-ID; with no trusted proxy in front the server
    generates the request id and logs the bench's as ``client_request_id``.
    """
    found = {}
    for line in access_lines(log_path):
        for key in (line.get("client_request_id"), line.get("request_id")):
            if key in request_ids:
                found[key] = float(line["duration_ms"])
    return found


def access_lines(log_path: Path, *, offset: int = 0, route: str | None = None) -> list[dict]:
    """The access lines (JSON with ``duration_ms``) written after byte ``offset``, for one route."""
    out = []
    with open(log_path, errors="replace") as fh:
        fh.seek(offset)
        for line in fh:
            if '"duration_ms"' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if route is None or record.get("route") == route:
                out.append(record)
    return out
