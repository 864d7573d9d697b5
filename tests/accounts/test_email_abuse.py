"""Our emails cannot be turned against anyone: email-change budgets, plain names, and no
requester-chosen text in mail to an address that has not proven itself."""

from __future__ import annotations

import pytest
from django.core import mail

from accounts.models import User
from tests.accounts.conftest import login, outbox_to
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
ME = "/api/v1/auth/me"
REGISTER = "/api/v1/auth/register"
NEW_PASSWORD = "Fresh-Horse-42-Staple"
# Names no template would print by chance: if they appear in a body, a template printed them.
FIRST, LAST = "Quirinus", "Zebulon"


@pytest.fixture
def limits(settings):
    """The default rule table on the real routes, counting (the package's autouse turns it off)."""
    from dashtam.ratelimit.rule_table import DEFAULT_RATE_RULES

    settings.RATELIMIT_ENABLE = True

    def apply(**rates):
        rules = {name: dict(rule) for name, rule in DEFAULT_RATE_RULES.items()}
        for name, rate in rates.items():
            rules[name]["rate"] = rate
        settings.RATE_LIMIT_RULES = rules

    apply()
    return apply


def signed_in(api_client, user, password):
    response = login(api_client, user.email, password)
    assert response.status_code == 200, response.content
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    return api_client


def change_email(client, to: str, password: str):
    return client.patch(ME, {"email": to, "current_password": password}, format="json")


def assert_rate_limited(response):
    assert response.status_code == 429, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "RATE_LIMITED"
    assert int(response["Retry-After"]) > 0


# --- Email-change budgets ------------------------------------------------------------------------
def test_a_user_gets_three_email_changes_an_hour_and_names_and_reads_stay_free(
    api_client, user, password, limits, django_capture_on_commit_callbacks,
):
    client = signed_in(api_client, user, password)
    with django_capture_on_commit_callbacks(execute=True):
        answers = [change_email(client, f"target{i}@example.net", password) for i in range(5)]
    assert [r.status_code for r in answers[:3]] == [200, 200, 200]
    assert_rate_limited(answers[3])
    assert_rate_limited(answers[4])
    assert 3000 < int(answers[3]["Retry-After"]) <= 3600
    assert sorted(m.to[0] for m in mail.outbox) == ["target0@example.net", "target1@example.net",
                                                    "target2@example.net"]
    # Reading the profile and changing names are not email changes.
    assert client.get(ME).status_code == 200
    assert client.patch(ME, {"first_name": "Grace"}, format="json").status_code == 200


def test_a_user_gets_ten_email_changes_a_day(api_client, user, password, limits):
    limits(email_change="100/h", email_change_address="100/h")
    client = signed_in(api_client, user, password)
    answers = [change_email(client, f"day{i}@example.net", password) for i in range(11)]
    assert {r.status_code for r in answers[:10]} == {200}
    assert_rate_limited(answers[10])
    assert int(answers[10]["Retry-After"]) > 3600


def test_wrong_passwords_spend_the_email_change_budget_too(api_client, user, password, limits):
    client = signed_in(api_client, user, password)
    for i in range(3):
        assert change_email(client, f"t{i}@example.net", "Not-The-Password-1").status_code in (400, 401, 403)
    assert_rate_limited(change_email(client, "t9@example.net", password))


def test_one_address_gets_at_most_three_change_emails_an_hour_whoever_asks(
    api_client, password, limits, django_capture_on_commit_callbacks,
):
    victim = "victim@example.org"
    answers = []
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(4):
            client = signed_in(type(api_client)(), UserFactory(password=password), password)
            # Spelling tricks do not open a fresh budget for the same address.
            answers.append(change_email(client, victim if i % 2 else " Victim@Example.org ", password))
    assert [r.status_code for r in answers[:3]] == [200, 200, 200]
    assert_rate_limited(answers[3])
    assert len(outbox_to(victim)) == 3


def test_registration_mails_one_address_at_most_five_times_an_hour(api_client, limits):
    answers = [api_client.post(REGISTER, {"email": "someone@example.org", "password": NEW_PASSWORD},
                               format="json", REMOTE_ADDR=f"198.51.100.{i}") for i in range(6)]
    assert {r.status_code for r in answers[:5]} == {202}
    assert_rate_limited(answers[5])


# --- Names -------------------------------------------------------------------------------------
BAD_NAMES = [
    "Ada\nURGENT: your account is suspended",
    "Ada\r\nBcc: x",
    "Ada\tLovelace",
    "Ada\x00",
    "Ada\u2028Lovelace",                 # line separator
    "\u202eecalevol",                    # right-to-left override
    "Ada\u200bLovelace",                 # zero-width space
    "x" * 65,
    "Visit https://evil.example/verify",
    "hxxp://evil",
    "HTTP://EVIL.EXAMPLE",
    "see www.evil.net",
    "evil.example/verify",
    "pay at dashtam-support.com now",
    "evil\uff0ecom",                     # full-width dot
    "mail bob@evil.example",
    "bob\uff20evil",                     # full-width @
    "tel:+15555550100",
    "10.0.0.1",
]
GOOD_NAMES = ["Ada", "Mary-Kate O'Neil", "J.R.R.", "Dr. Who", "St. John", "José Ñúñez", "محمد",
              "王小明", "Nasrin\u200cDokht", "x" * 64, ""]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_registration_refuses_a_name_that_is_not_plain_single_line_text(api_client, name):
    for field in ("first_name", "last_name"):
        response = api_client.post(REGISTER, {"email": "new@example.com", "password": NEW_PASSWORD,
                                              field: name}, format="json")
        assert response.status_code == 400, (field, name)
        body = response.json()
        assert body["code"] == "VALIDATION_ERROR" and field in body["errors"]
    assert not User.objects.filter(email="new@example.com").exists()
    assert mail.outbox == []


@pytest.mark.parametrize("name", BAD_NAMES)
def test_patch_me_refuses_a_name_that_is_not_plain_single_line_text(auth_client, user, name):
    response = auth_client.patch(ME, {"first_name": name}, format="json")
    assert response.status_code == 400
    assert "first_name" in response.json()["errors"]
    response = auth_client.patch(ME, {"last_name": name}, format="json")
    assert "last_name" in response.json()["errors"]
    user.refresh_from_db()
    assert (user.first_name, user.last_name) == ("Ada", "Lovelace")


def test_the_refusal_says_why(auth_client):
    errors = auth_client.patch(ME, {"first_name": "go to https://evil.example"}, format="json").json()["errors"]
    assert errors["first_name"] == ["Names cannot contain a web address."]
    errors = auth_client.patch(ME, {"first_name": "Ada\nLovelace"}, format="json").json()["errors"]
    assert "line breaks" in errors["first_name"][0]
    errors = auth_client.patch(ME, {"last_name": "ada@example.com"}, format="json").json()["errors"]
    assert errors["last_name"] == ["Names cannot contain an email address."]
    errors = auth_client.patch(ME, {"last_name": "y" * 65}, format="json").json()["errors"]
    assert "64" in errors["last_name"][0]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_real_names_are_accepted(auth_client, user, name):
    response = auth_client.patch(ME, {"first_name": name}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["first_name"] == name


def test_the_name_length_is_a_setting(auth_client, settings):
    settings.ACCOUNT_NAME_MAX_LENGTH = 10
    assert auth_client.patch(ME, {"first_name": "x" * 11}, format="json").status_code == 400
    assert auth_client.patch(ME, {"first_name": "x" * 10}, format="json").status_code == 200


def test_a_bad_name_length_setting_stops_start_up(settings):
    from django.core import checks

    settings.ACCOUNT_NAME_MAX_LENGTH = 500
    errors = [m for m in checks.run_checks() if m.id == "accounts.E020"]
    assert errors and "ACCOUNT_NAME_MAX_LENGTH" in errors[0].msg


# --- No requester-chosen text in mail to unproven addresses (a real SMTP server) ------------------
def bodies(smtp_sink, message) -> str:
    html = message.get_body(preferencelist=("html",)).get_content()
    return message["Subject"] + smtp_sink.text(message) + html


def assert_no_requester_text(smtp_sink, message, *texts):
    content = bodies(smtp_sink, message)
    for text in texts:
        assert text not in content, (text, message["Subject"])


def test_verification_and_someone_tried_to_register_emails_print_no_name(
    api_client, smtp_sink, django_capture_on_commit_callbacks,
):
    # The requester picks the recipient, down to a sub-address that reaches the same inbox.
    address = "fresh+urgent-call-5551234@example.org"
    with django_capture_on_commit_callbacks(execute=True):
        first = api_client.post(REGISTER, {"email": address, "password": NEW_PASSWORD,
                                           "first_name": FIRST, "last_name": LAST}, format="json")
    assert first.status_code == 202
    (verify,) = smtp_sink.wait_for(1, to=address)
    assert "token=" in smtp_sink.text(verify)
    assert_no_requester_text(smtp_sink, verify, FIRST, LAST, "urgent-call")

    # The account now exists, unverified, with the first requester's names; a second sign-up
    # (and a reset, a lockout notice...) to the same, still unproven, address prints none of them.
    with django_capture_on_commit_callbacks(execute=True):
        again = api_client.post(REGISTER, {"email": address, "password": NEW_PASSWORD,
                                           "first_name": "Other", "last_name": "Person"}, format="json")
        reset = api_client.post("/api/v1/auth/request-password-reset", {"email": address}, format="json")
    assert (again.status_code, reset.status_code) == (202, 202)
    messages = smtp_sink.wait_for(3, to=address)
    (tried,) = [m for m in messages if "Someone tried" in m["Subject"]]
    assert_no_requester_text(smtp_sink, tried, "urgent-call")
    for message in messages:
        assert_no_requester_text(smtp_sink, message, FIRST, LAST, "Other", "Person")


def test_the_email_change_confirmation_prints_neither_name_nor_the_old_address(
    api_client, password, smtp_sink, django_capture_on_commit_callbacks,
):
    requester = UserFactory(password=password, email="requester-chosen-text@example.com",
                            first_name=FIRST, last_name=LAST)
    owner = UserFactory(email="owner@example.org", first_name="Owner")
    client = signed_in(api_client, requester, password)
    with django_capture_on_commit_callbacks(execute=True):
        assert change_email(client, "unproven@example.org", password).status_code == 200
        assert change_email(client, owner.email, password).status_code == 200
    (confirm,) = smtp_sink.wait_for(1, to="unproven@example.org")
    assert "token=" in smtp_sink.text(confirm)
    assert_no_requester_text(smtp_sink, confirm, FIRST, LAST, "requester-chosen-text")
    (notice,) = smtp_sink.wait_for(1, to=owner.email)
    assert "Someone tried" in notice["Subject"]
    assert_no_requester_text(smtp_sink, notice, FIRST, LAST, "requester-chosen-text")


def test_mail_to_a_proven_address_still_greets_its_owner_by_name(
    api_client, user, password, smtp_sink, django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post("/api/v1/auth/request-password-reset", {"email": user.email}, format="json")
    assert response.status_code == 202
    (reset,) = smtp_sink.wait_for(1, to=user.email)
    assert f"Hello {user.first_name}," in smtp_sink.text(reset)


def test_a_malformed_method_narrowing_stops_start_up(settings):
    from dashtam.ratelimit.rule_table import DEFAULT_RATE_RULES
    from dashtam.ratelimit.rules import rule_problems

    rules = {name: dict(rule) for name, rule in DEFAULT_RATE_RULES.items()}
    assert rule_problems(rules) == []
    rules["email_change"]["methods"] = "PATCH"
    assert any("email_change" in p and "methods" in p for p in rule_problems(rules))
