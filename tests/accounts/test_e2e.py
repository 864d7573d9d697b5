"""The whole accounts journey over a real SMTP server and a real Celery worker."""

from __future__ import annotations

import pytest

from tests.accounts.conftest import NEW_PASSWORD, TOKEN_RE

pytestmark = pytest.mark.integration

PASSWORD = "First-Password-12!"
EMAIL = "journey@example.com"


def token_in(smtp_sink, message) -> str:
    match = TOKEN_RE.search(smtp_sink.text(message))
    assert match, smtp_sink.text(message)
    return match.group(1)


@pytest.mark.slow
def test_register_verify_login_me_change_reset_and_login_again(api_client, smtp_sink, celery_worker, settings):
    settings.RATELIMIT_ENABLE = False
    post = lambda path, data, **kw: api_client.post(f"/api/v1/auth/{path}", data, format="json", **kw)  # noqa: E731

    assert post("register", {"email": EMAIL, "password": PASSWORD, "first_name": "Jo"}).status_code == 202
    (verify_mail,) = smtp_sink.wait_for(1, to=EMAIL, timeout=30)
    assert "Verify" in verify_mail["Subject"]
    assert verify_mail.get_body(preferencelist=("html",)) is not None
    assert post("verify-email", {"token": token_in(smtp_sink, verify_mail)}).status_code == 200

    login = post("login", {"email": EMAIL, "password": PASSWORD})
    assert login.status_code == 200, login.content
    access = login.json()["access"]
    auth = {"HTTP_AUTHORIZATION": f"Bearer {access}"}
    me = api_client.get("/api/v1/auth/me", **auth)
    assert me.status_code == 200 and me.json()["email"] == EMAIL and me.json()["first_name"] == "Jo"

    changed = post("change-password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, **auth)
    assert changed.status_code == 200
    smtp_sink.wait_for(2, to=EMAIL, timeout=30)

    assert post("request-password-reset", {"email": EMAIL}).status_code == 202
    messages = smtp_sink.wait_for(3, to=EMAIL, timeout=30)
    reset_mail = next(m for m in messages if "Reset your" in m["Subject"])
    final_password = "Third-Password-34!"
    reset = post("reset-password", {"token": token_in(smtp_sink, reset_mail), "new_password": final_password})
    assert reset.status_code == 200
    assert api_client.get("/api/v1/auth/me", **auth).status_code == 401

    assert post("login", {"email": EMAIL, "password": NEW_PASSWORD}).status_code == 401
    again = post("login", {"email": EMAIL, "password": final_password})
    assert again.status_code == 200
    smtp_sink.wait_for(4, to=EMAIL, timeout=30)
