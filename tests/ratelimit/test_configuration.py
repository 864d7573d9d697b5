"""Every rule is overridable by env var, and a bad value stops start-up naming the variable."""

from __future__ import annotations

import environ

from dashtam.ratelimit.checks import check_rate_limits
from dashtam.ratelimit.rule_table import DEFAULT_RATE_RULES, parse_rate_rules


def test_each_rule_reads_its_rate_key_and_routes_from_the_environment(monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_LOGIN", "30/m")
    monkeypatch.setenv("RATE_LIMIT_PROVIDERS_KEY", "user_or_ip")
    monkeypatch.setenv("RATE_LIMIT_SESSIONS_ROUTES", "sessions-*, auth-logout ,auth-me")
    rules = parse_rate_rules(environ.Env())

    assert rules["login"]["rate"] == "30/m"
    assert rules["providers"]["key"] == "user_or_ip"
    assert rules["sessions"]["routes"] == ["sessions-*", "auth-logout", "auth-me"]
    assert rules["register"] == DEFAULT_RATE_RULES["register"]
    assert set(rules) == set(DEFAULT_RATE_RULES)


def test_the_defaults_pass_the_start_up_checks(settings):
    settings.RATE_LIMIT_RULES = parse_rate_rules(environ.Env())
    assert check_rate_limits() == []


def test_bad_values_fail_start_up_with_every_variable_named(monkeypatch, settings):
    monkeypatch.setenv("RATE_LIMIT_LOGIN", "lots")
    monkeypatch.setenv("RATE_LIMIT_REFRESH_KEY", "cookie")
    monkeypatch.setenv("RATE_LIMIT_API_ROUTES", " ")
    monkeypatch.setenv("RATE_LIMIT_REGISTER", "off")
    settings.RATE_LIMIT_RULES = parse_rate_rules(environ.Env())
    settings.RATELIMIT_IPV6_MASK = 129

    messages = [error.msg for error in check_rate_limits()]
    assert len(messages) == 4
    assert any("RATE_LIMIT_LOGIN='lots'" in m for m in messages)
    assert any("RATE_LIMIT_REFRESH_KEY='cookie'" in m for m in messages)
    assert any("RATE_LIMIT_API_ROUTES" in m for m in messages)
    assert any("RATELIMIT_IPV6_MASK" in m for m in messages)


def test_the_exception_class_must_answer_an_honest_429(settings):
    settings.RATELIMIT_EXCEPTION_CLASS = "django_ratelimit.exceptions.Ratelimited"
    assert [e.id for e in check_rate_limits()] == ["dashtam_ratelimit.E002"]
