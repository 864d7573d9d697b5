"""The password policy: PASSWORD_POLICY=composition (default) or nist.

composition: 8-128 characters with an upper-case letter, a lower-case letter,
a digit and a special character, plus common-password and similarity checks.
nist: NIST SP 800-63B rev. 4 / OWASP ASVS 5.0 6.2.5: no composition rules,
at least 15 characters, any Unicode including spaces, and the common list.
Either way the password is checked exactly as typed: never truncated or folded.
Every broken rule is reported, not only the first.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.password_validation import (
    CommonPasswordValidator,
    UserAttributeSimilarityValidator,
)
from django.core.exceptions import ValidationError

MAX_LENGTH = 128


class PolicyPasswordValidator:
    def __init__(self):
        self.common = CommonPasswordValidator()
        self.similar = UserAttributeSimilarityValidator(user_attributes=("email", "first_name", "last_name"))

    def validate(self, password, user=None):
        errors: list[ValidationError] = []
        nist = settings.PASSWORD_POLICY == "nist"
        min_length = 15 if nist else 8
        if len(password) < min_length:
            errors.append(ValidationError(
                f"Password must be at least {min_length} characters.", code="password_too_short"))
        if len(password) > MAX_LENGTH:
            errors.append(ValidationError(
                f"Password must be at most {MAX_LENGTH} characters.", code="password_too_long"))
        if not nist:
            if not any(c.isupper() for c in password):
                errors.append(ValidationError(
                    "Password must contain an upper-case letter.", code="password_no_upper"))
            if not any(c.islower() for c in password):
                errors.append(ValidationError(
                    "Password must contain a lower-case letter.", code="password_no_lower"))
            if not any(c.isdigit() for c in password):
                errors.append(ValidationError("Password must contain a digit.", code="password_no_digit"))
            if all(c.isalnum() for c in password):
                errors.append(ValidationError(
                    "Password must contain a special character.", code="password_no_special"))
        for validator in (self.common, self.similar):
            if validator is self.similar and user is None:
                continue
            try:
                validator.validate(password, user)
            except ValidationError as exc:
                errors.extend(exc.error_list)
        if errors:
            raise ValidationError(errors)

    def get_help_text(self):
        if settings.PASSWORD_POLICY == "nist":
            return "At least 15 characters; spaces and any characters allowed; not a common password."
        return ("8 to 128 characters with an upper-case letter, a lower-case letter, a digit "
                "and a special character; not a common password.")
