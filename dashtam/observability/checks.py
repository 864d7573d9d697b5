"""Start-up checks for the metrics and tracing settings (each message names its variable)."""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, register


def _err(var: str, msg: str, n: int) -> Error:
    return Error(f"{var}: {msg}", hint=f"Set the environment variable {var}.", id=f"observability.E{n:03d}")


@register(Tags.security, deploy=False)
def check_observability(app_configs=None, **kwargs):
    errors: list[Error] = []
    for value in settings.METRICS_ALLOWED_NETWORKS:
        if not value.strip():
            continue
        try:
            ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            errors.append(_err("METRICS_ALLOWED_NETWORKS", f"{value!r} is not an IP network "
                               "(comma-separated, such as 10.0.0.0/8,127.0.0.1)", 1))
    token = settings.METRICS_BEARER_TOKEN
    if token and (len(token) < 32 or len(set(token)) < 5):
        errors.append(_err("METRICS_BEARER_TOKEN", "must be at least 32 random characters", 2))
    multiproc = settings.PROMETHEUS_MULTIPROC_DIR
    if multiproc and not (os.path.isdir(multiproc) and os.access(multiproc, os.W_OK)):
        errors.append(_err("PROMETHEUS_MULTIPROC_DIR", f"{multiproc!r} is not a writable directory", 3))
    endpoint = settings.OTEL_EXPORTER_OTLP_ENDPOINT
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            errors.append(_err("OTEL_EXPORTER_OTLP_ENDPOINT", "must be an http(s) URL, such as "
                               "http://otel-collector:4318", 4))
    return errors
