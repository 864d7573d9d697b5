"""The rule table (``settings.RATE_LIMIT_RULES``), compiled and matched by URL name."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core.signals import setting_changed

from dashtam.ratelimit.counter import parse_rate
from dashtam.ratelimit.rule_table import RATE_LIMIT_KEYS, RATE_OFF, rate_rule_env_var


@dataclass(frozen=True)
class Rule:
    name: str
    routes: tuple[str, ...]
    key: str
    rate: str
    limit: int
    period: int
    lockout_first: bool = False
    # Optional narrowing: only these HTTP methods (empty: any), and only requests whose
    # body carries this field (empty: any), e.g. the email change is a PATCH of auth/me
    # with an "email", while a plain GET or a change of names is not one.
    methods: tuple[str, ...] = ()
    if_body: str = ""

    def applies_to(self, method: str | None) -> bool:
        return not self.methods or (method or "").upper() in self.methods

    def matches(self, url_name: str | None) -> bool:
        for route in self.routes:
            if route == "*":
                return True
            if url_name is None:
                continue
            if route.endswith("*"):
                if url_name.startswith(route[:-1]):
                    return True
            elif url_name == route:
                return True
        return False


def rule_problems(rules: dict) -> list[str]:
    """Every problem of a rule table, each naming the variable or rule to fix."""
    problems = []
    if not isinstance(rules, dict):
        return ["RATE_LIMIT_RULES must be a mapping of rule name to rule"]
    for name, rule in rules.items():
        rate = str(rule.get("rate", "")).strip()
        if rate.lower() not in RATE_OFF:
            try:
                parse_rate(rate)
            except ValueError:
                problems.append(f"{rate_rule_env_var(name)}={rate!r} is not a rate "
                                "(for example 20/m, 5/15m, 1000/h, or off)")
        key = str(rule.get("key", ""))
        if key not in RATE_LIMIT_KEYS and not (key.startswith("body:") and len(key) > 5):
            problems.append(f"{rate_rule_env_var(name)}_KEY={key!r} is not a key "
                            f"({', '.join(RATE_LIMIT_KEYS)} or body:<field>)")
        routes = rule.get("routes")
        if not routes or isinstance(routes, str):
            problems.append(f"{rate_rule_env_var(name)}_ROUTES is empty: list URL names, "
                            "prefixes such as sessions-*, or *")
        methods = rule.get("methods") or ()
        if isinstance(methods, str) or not all(isinstance(m, str) and m.isalpha() for m in methods):
            problems.append(f"rule {name!r}: methods must be a list of HTTP methods such as ['PATCH']")
        if not isinstance(rule.get("if_body") or "", str):
            problems.append(f"rule {name!r}: if_body must be the name of a body field")
    return problems


def _compile(rules: dict) -> tuple[Rule, ...]:
    compiled = []
    for name, rule in rules.items():
        rate = str(rule.get("rate", "")).strip()
        if rate.lower() in RATE_OFF:
            continue
        try:
            limit, period = parse_rate(rate)
        except ValueError:
            continue  # reported at start-up by dashtam.ratelimit.checks
        compiled.append(Rule(
            name=name, routes=tuple(rule.get("routes") or ()), key=str(rule.get("key", "ip")),
            rate=rate, limit=limit, period=period, lockout_first=bool(rule.get("lockout_first")),
            methods=tuple(str(m).upper() for m in rule.get("methods") or ()),
            if_body=str(rule.get("if_body") or ""),
        ))
    return tuple(compiled)


def _signature(rules: dict) -> tuple:
    """A hashable snapshot of the table: a rule changed in place is a new table too."""
    return tuple(
        (name, str(rule.get("rate", "")), str(rule.get("key", "")), tuple(rule.get("routes") or ()),
         bool(rule.get("lockout_first")), tuple(rule.get("methods") or ()), str(rule.get("if_body") or ""))
        for name, rule in rules.items()
    )


@lru_cache(maxsize=1024)
def _for(signature: tuple, url_name: str | None, method: str | None) -> tuple[Rule, ...]:
    table = _compile({name: {"rate": rate, "key": key, "routes": routes, "lockout_first": first,
                             "methods": methods, "if_body": if_body}
                      for name, rate, key, routes, first, methods, if_body in signature})
    return tuple(rule for rule in table if rule.matches(url_name) and (method is None or rule.applies_to(method)))


# (the table object, its signature): building the signature walks the whole table, which
# every authenticated request would otherwise pay for.
_signed: list = [None, ()]


def rules_for(url_name: str | None, method: str | None = None) -> tuple[Rule, ...]:
    """The rules that cover a route under /api/ (``None``: a path no route matched),
    for requests of ``method`` when given (rules narrowed to other methods left out).

    Matched once per table and route. ``settings.RATE_LIMIT_RULES`` is read on every
    request, so a test or override_settings that assigns a new table is obeyed at once,
    and a setting_changed signal (override_settings, pytest's settings fixture) makes
    even a table changed in place be read again.
    """
    table = settings.RATE_LIMIT_RULES
    holder, signature = _signed
    if holder is not table:
        signature = _signature(table)
        _signed[:] = [table, signature]
    return _for(signature, url_name, method.upper() if method else None)


def clear_caches() -> None:
    _for.cache_clear()
    _signed[:] = [None, ()]


def _on_setting_changed(*, setting: str, **kwargs) -> None:
    # Tables seen under test settings are not needed again.
    if setting == "RATE_LIMIT_RULES":
        clear_caches()


setting_changed.connect(_on_setting_changed, dispatch_uid="dashtam.ratelimit.rules")
