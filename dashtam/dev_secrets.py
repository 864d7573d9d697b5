"""The secrets of development and test: generated once per checkout, kept out of git.

``manage.py init_dev_secrets`` writes them (``make run``, ``make test`` and CI call it
before anything loads the settings); ``dashtam/settings.py`` only reads them, and only
outside production, where every secret comes from the environment. No Django import:
the settings module reads this before Django is configured.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from pathlib import Path

FILENAME = ".dev-secrets.json"
COMMAND = "python manage.py init_dev_secrets"


def path_for(base_dir: Path) -> Path:
    return Path(base_dir) / FILENAME


def read(base_dir: Path) -> dict[str, str]:
    """The checkout's development secrets, or {} when the file is missing or unreadable."""
    try:
        values = json.loads(path_for(base_dir).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(values, dict):
        return {}
    return {str(k): str(v) for k, v in values.items() if isinstance(v, str) and v}


def generate() -> dict[str, str]:
    """A new secret key and a new AES-256-GCM field key (FIELD_ENCRYPTION_KEYS' format)."""
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return {"DJANGO_SECRET_KEY": secrets.token_urlsafe(64), "FIELD_ENCRYPTION_KEYS": f"dev1:{key}"}


def for_tests() -> dict[str, str]:
    """Fixed values for DJANGO_ENV=test without the file: derived from a public label, so every
    process of a test run agrees on them. Public by construction: never a production secret."""
    seed = hashlib.sha256(b"dashtam: test-only secrets, public").digest()
    key = base64.urlsafe_b64encode(seed).decode().rstrip("=")
    return {"DJANGO_SECRET_KEY": "test-only-" + hashlib.sha256(seed).hexdigest(),
            "FIELD_ENCRYPTION_KEYS": f"test1:{key}"}


def ensure(base_dir: Path) -> bool:
    """Write the file (mode 0600) unless it holds secrets already; returns whether it wrote.

    Idempotent, and safe when two processes race: the file is created exclusively, so
    the first writer's secrets are the ones every process reads. An existing file is
    never replaced: data sealed with its FIELD_ENCRYPTION_KEYS would become unreadable.
    """
    path = path_for(base_dir)
    if read(base_dir):
        return False
    if path.exists():
        path.unlink()  # empty or unreadable: nothing sealed with it could be opened anyway
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        json.dump(generate(), handle)
    return True
