"""JSON log lines that carry the request context and never a secret."""

from __future__ import annotations

import functools
import json
import logging
import re
import time

import orjson
from pythonjsonlogger.json import JsonEncoder
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
# One line per record, compact like orjson's (no space after "," and ":").
_compact_dumps = functools.partial(json.dumps, separators=(",", ":"))
# A text none of SENSITIVE_TEXT can change: no "bearer"/"basic", no "eyJ", and no secret's
# name with a ":" or "=" anywhere. Plain substring tests instead of three substitutions on
# every value of every log line (most of them ids, paths and times). Each pattern needs one
# of these to match at all, so where none is present the patterns change nothing.
SECRET_NAMES = ("password", "passwd", "secret", "token", "refresh", "access", "code", "state")


def _may_hold_secret(text: str) -> bool:
    # The patterns match case-insensitively, and Unicode case-insensitivity has equivalences
    # that str.lower() does not produce ("ſ" matches "s", "ı" matches "i"): the substring tests
    # below are only exact on ASCII text, so any other text takes the patterns.
    if not text.isascii() or "eyJ" in text:
        return True
    lowered = text.lower()
    if "bearer" in lowered or "basic" in lowered:
        return True
    return ("=" in text or ":" in text) and any(name in lowered for name in SECRET_NAMES)


# Keys come from the code (the names of log fields and audit extras), so the set is small;
# the bound only keeps a careless caller from growing it without end.
@functools.lru_cache(maxsize=4096)
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
    if not _may_hold_secret(text):
        return text
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


_tracing = None


def _tracing_on() -> bool:
    global _tracing
    if _tracing is None:
        from dashtam.observability import tracing

        _tracing = tracing
    return _tracing.enabled()


class JsonFormatter(_BaseJsonFormatter):
    """One JSON object per line: time, level, name, message, then the record's extra fields.

    A record with no exception or stack and a text message (the access line and nearly
    every other) is formatted by a short path that writes the same object as
    python-json-logger's general one, with its fields in the same order, encoded by
    orjson; the time text is built once per second. Anything else, or a formatter
    configured otherwise, goes through python-json-logger itself. Every line is compact
    JSON (no space after ``,`` and ``:``), whichever way it was written.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(message)s")
        kwargs.setdefault("rename_fields", {"levelname": "level", "asctime": "time"})
        kwargs.setdefault("json_serializer", _compact_dumps)
        super().__init__(*args, **kwargs)
        self._short_path = (
            self._required_fields == ["asctime", "levelname", "name", "message"]
            and self.rename_fields == {"levelname": "level", "asctime": "time"}
            and not (self.defaults or self.static_fields or self.timestamp or self.prefix)
            and not self.rename_fields_keep_missing
            and self.datefmt is None
            and self.json_serializer is _compact_dumps
            and self.json_encoder is JsonEncoder
            and self.json_default is None
            and self.json_indent is None
        )
        # What the serializer builds on every call; encode() keeps no state between calls,
        # so threads share it.
        self._encode = JsonEncoder(ensure_ascii=self.json_ensure_ascii, separators=(",", ":")).encode
        self._second: tuple[int, str] = (-1, "")

    def format(self, record):
        if (not self._short_path or record.exc_info or record.exc_text or record.stack_info
                or isinstance(record.msg, dict)):
            return super().format(record)
        record.message = message = record.getMessage()
        record.asctime = asctime = self.formatTime(record)
        log_record = {"time": asctime, "level": record.levelname, "name": record.name, "message": message}
        skip = self._skip_fields
        for key, value in record.__dict__.items():
            if key not in skip and not (hasattr(key, "startswith") and key.startswith("_")):
                log_record[key] = value
        log_record = self.process_log_record(log_record)
        try:
            line = orjson.dumps(log_record).decode()
        except (TypeError, orjson.JSONEncodeError):
            return self._encode(log_record)  # a value orjson does not know: python-json-logger's encoder
        # python-json-logger writes ASCII only (\u escapes); a line with anything else takes its way.
        return line if line.isascii() or not self.json_ensure_ascii else self._encode(log_record)

    def formatTime(self, record, datefmt=None):  # logging API
        if datefmt is not None or self.converter is not time.localtime:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached_second, text = self._second
        if cached_second != second:
            text = time.strftime(self.default_time_format, time.localtime(second))
            self._second = (second, text)
        return self.default_msec_format % (text, record.msecs)

    def process_log_record(self, log_record):
        # Django attaches the request object to some records; never serialise it.
        log_record.pop("request", None)
        return scrub(log_record)

    def formatMessage(self, record):  # logging API
        return scrub_text(super().formatMessage(record))

    def formatException(self, ei):  # logging API
        return scrub_text(super().formatException(ei))
