"""JSON log lines that carry the request context and never a secret."""

from __future__ import annotations

import logging
import re

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

SENSITIVE_KEY = re.compile(
    r"pass(word)?|secret|token|authorization|cookie|api[_-]?key|signature|credential|"
    r"^code$|^state$|^code_verifier$|^refresh$|^access$|private",
    re.IGNORECASE,
)
# Bearer tokens, JWTs and key=value secrets that slip into a message string.
SENSITIVE_TEXT = [
    (re.compile(r"(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [REDACTED]"),
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"), "[REDACTED-JWT]"),
    (
        re.compile(
            r"(?i)((?:password|passwd|secret|token|refresh|access|code|state)[\"']?\s*[:=]\s*[\"']?)"
            r"[^\s\"'&,}]+"
        ),
        r"\1[REDACTED]",
    ),
]
# Keys that name a property of a secret, not the secret: token_version, token_type,
# refresh_count, password_changed_at, client_id...
SAFE_KEY_SUFFIXES = ("_version", "_type", "_count", "_at", "_id", "_kind", "_length", "_rotation")
REDACTED = "[REDACTED]"


def is_sensitive_key(key: str) -> bool:
    lowered = key.lower()
    if lowered.endswith(SAFE_KEY_SUFFIXES):
        return False
    return bool(SENSITIVE_KEY.search(lowered))


def scrub(value, depth: int = 0):
    """Replace the values of sensitive keys, recursively."""
    if depth > 6:
        return value
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and is_sensitive_key(k) else scrub(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [scrub(v, depth + 1) for v in value]
    if isinstance(value, str):
        return scrub_text(value)
    return value


def scrub_text(text: str) -> str:
    for pattern, replacement in SENSITIVE_TEXT:
        text = pattern.sub(replacement, text)
    return text


class RequestContextFilter(logging.Filter):
    """Adds request_id, user_id, method and path from the request context."""

    def filter(self, record: logging.LogRecord) -> bool:
        from dashtam import context

        ctx = context.get()
        if ctx is not None:
            record.request_id = ctx.request_id
            if ctx.client_request_id:
                record.client_request_id = ctx.client_request_id
            record.user_id = ctx.user_id
            if not hasattr(record, "method"):
                record.method = ctx.method
            if not hasattr(record, "path"):
                record.path = ctx.path
            if ctx.session_id:
                record.session_id = ctx.session_id
        if _tracing_on():
            from dashtam.observability.tracing import current_ids

            ids = current_ids()
            if ids is not None:
                record.trace_id, record.span_id = ids
        return True


def _tracing_on() -> bool:
    from dashtam.observability import tracing

    return tracing.enabled()


class JsonFormatter(_BaseJsonFormatter):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(message)s")
        kwargs.setdefault("rename_fields", {"levelname": "level", "asctime": "time"})
        super().__init__(*args, **kwargs)

    def process_log_record(self, log_record):
        # Django attaches the request object to some records; never serialise it.
        log_record.pop("request", None)
        return scrub(log_record)

    def formatMessage(self, record):  # logging API
        return scrub_text(super().formatMessage(record))

    def formatException(self, ei):  # logging API
        return scrub_text(super().formatException(ei))
