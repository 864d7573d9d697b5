"""Bad audit settings stop start-up with a message naming the variable."""

from __future__ import annotations

from audit.checks import audit_settings_check


def test_a_non_positive_setting_is_named(settings):
    settings.AUDIT_RETENTION_DAYS = 0
    settings.AUDIT_PURGE_BATCH_SIZE = -5
    messages = [e.msg for e in audit_settings_check()]
    assert any("AUDIT_RETENTION_DAYS" in m for m in messages)
    assert any("AUDIT_PURGE_BATCH_SIZE" in m for m in messages)
    assert len(messages) == 2


def test_the_defaults_pass():
    assert audit_settings_check() == []
