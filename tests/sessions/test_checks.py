"""A bad session setting stops start-up with a message naming the variable."""

from __future__ import annotations

from sessions_mgmt.checks import session_settings_check


def test_valid_settings_pass():
    assert session_settings_check() == []


def test_each_bad_variable_is_named(settings, tmp_path):
    settings.REFRESH_TOKEN_LIFETIME = 10
    settings.ACCESS_TOKEN_LIFETIME = 60
    settings.REFRESH_REUSE_GRACE_SECONDS = -1
    settings.GEOIP_PATH = str(tmp_path / "missing.mmdb")
    messages = " ".join(e.msg for e in session_settings_check())
    for name in ("REFRESH_TOKEN_LIFETIME", "REFRESH_REUSE_GRACE_SECONDS", "GEOIP_PATH"):
        assert name in messages
