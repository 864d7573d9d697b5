"""The allowed import directions between the apps and the hub, checked over the source's AST.

    dashtam (the hub: settings, urls, Celery, the outbox, shared API plumbing) imports no app.
    Every app may import the hub and audit's public recording API (audit.services).
    The rate-limit app (dashtam.ratelimit, or ratelimit/ at the top level) is infrastructure:
    every app may import it, and it imports only what any app may.
    accounts may also import the services and selectors of sessions_mgmt and providers.
    account_pages may also import accounts.
    Nothing else crosses between apps: no app imports back.

Every import counts, at module level or inside a function (a lazy import is still a
dependency). Migrations and tests are exempt. ``KNOWN_VIOLATIONS`` lists the crossings that
exist today and are being removed; the test fails on any crossing not listed there, and on
any listed one that no longer occurs, so the list only shrinks.
"""

from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HUB = "dashtam"
RATELIMIT = "ratelimit"
APPS = ("accounts", "sessions_mgmt", "providers", "audit", "account_pages")
PACKAGES = (HUB, RATELIMIT, *APPS)
# What any app may import from another app: audit's public recording API.
SHARED = ("audit.services",)
# Extra directions, per importing app (a module or its submodules).
ALLOWED = {
    "accounts": ("sessions_mgmt.services", "sessions_mgmt.selectors",
                 "providers.services", "providers.selectors"),
    "account_pages": ("accounts",),
}
# The one exception for the hub: the settings read the rate-limit rule table (a pure module,
# no Django import) to apply the RATE_LIMIT_<NAME> environment overrides.
SETTINGS_READS = {"dashtam.settings": ("dashtam.ratelimit.rule_table",)}

# (importing module, imported module) pairs that break the rules today. The issue that
# fixes the seams removes them; empty this list as they go, never add to it.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


def _component(name: str) -> str:
    """The hub, the rate-limit app (wherever it lives), or the app a module belongs to."""
    if _within(name, ("dashtam.ratelimit", "ratelimit")):
        return RATELIMIT
    return name.split(".", 1)[0]


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved, ``from a import b`` read as
    ``a.b`` when ``b`` is a module."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _is_module(candidate) else base)
    return found


def _allowed(importer: str, imported: str) -> bool:
    source, target = _component(importer), _component(imported)
    if target == source or target not in PACKAGES:
        return True  # within one component, or the standard library and third parties
    if importer in SETTINGS_READS:
        return _within(imported, SETTINGS_READS[importer]) or target == HUB
    if source == HUB:
        return False  # the hub imports no app
    if target == HUB or _within(imported, SHARED):
        return True
    if target == RATELIMIT:
        return source != RATELIMIT and source in APPS
    return _within(imported, ALLOWED.get(source, ()))


def _source_files():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):  # no ratelimit/ yet: nothing
            if "migrations" in path.relative_to(ROOT).parts:
                continue
            yield path


@functools.cache
def crossings() -> frozenset[tuple[str, str]]:
    """Every (importer, imported) pair against the allowed directions."""
    found = set()
    for path in _source_files():
        importer = _module_name(path)
        for imported in _imports(path):
            if not _allowed(importer, imported):
                found.add((importer, imported))
    return frozenset(found)


def test_apps_import_only_in_the_allowed_directions():
    new = sorted(crossings() - KNOWN_VIOLATIONS)
    assert not new, "imports against the allowed directions (docs/concepts/components.md):\n" + "\n".join(
        f"  {importer} -> {imported}" for importer, imported in new)


def test_every_known_violation_still_occurs():
    gone = sorted(KNOWN_VIOLATIONS - crossings())
    assert not gone, "fixed: remove these from KNOWN_VIOLATIONS:\n" + "\n".join(
        f"  {importer} -> {imported}" for importer, imported in gone)


def test_the_check_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    """The rules themselves: a lazy import inside a function counts, a relative one resolves."""
    assert not _allowed("dashtam.health", "providers.registry")
    assert not _allowed("sessions_mgmt.apis", "accounts.models")
    assert not _allowed("providers.tasks", "accounts.services")
    assert _allowed("providers.apis", "audit.services")
    assert not _allowed("providers.apis", "audit.models")
    assert _allowed("accounts.services", "sessions_mgmt.services")
    assert not _allowed("accounts.services", "sessions_mgmt.models")
    assert _allowed("account_pages.views", "accounts.forms")
    assert _allowed("audit.admin", "dashtam.api.problems")
    assert _allowed("accounts.apis", "rest_framework.views")
    assert _allowed("providers.clients.base", "dashtam.ratelimit.core")
    assert _allowed("dashtam.ratelimit.services", "audit.services")
    assert not _allowed("dashtam.ratelimit.enforcement", "sessions_mgmt.tokens")
    assert not _allowed("dashtam.outbox.services", "providers.crypto")
    assert _allowed("dashtam.settings", "dashtam.ratelimit.rule_table")
    assert not _allowed("dashtam.settings", "providers.models")

    package = tmp_path / "sessions_mgmt"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("")
    (package / "services.py").write_text(
        "from . import helpers\n\ndef f():\n    from accounts.models import User\n    return User\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _imports(package / "services.py") == {"sessions_mgmt.helpers", "accounts.models"}
