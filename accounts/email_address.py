"""The one canonical form of an email address (docs/accounts.md, "Email addresses").

Every place that stores, compares or counts an address (registration, login, resend,
reset, email change, the lockout and rate-limit keys, admin search, management
commands) goes through :func:`canonical_email`, and every lookup is an exact match
on the result. Nothing here imports Django models, so the rate limiter and the
migrations can use it too.

The form:

* surrounding whitespace is dropped;
* the local part is Unicode NFKC, then case-folded, then taken through an upper/lower
  round trip until it is stable. That folds the compatibility spellings that
  ``str.lower()`` kept apart and PostgreSQL's ``UPPER()`` joined: ``ſ`` (U+017F) becomes
  ``s``, ``ı`` (U+0131) becomes ``i``, ``ＵＳＥＲ`` becomes ``user``;
* the domain is folded the same way and converted to IDNA ASCII (punycode), lower-case.

New addresses (registration, email change) must have a plain ASCII local part:
:func:`new_email_problem` says why one is refused. So every stored address has an
ASCII local part, and a look-alike spelling typed at login either folds onto the one
account it spells (and counts toward that account's lockout) or reaches none.
"""

from __future__ import annotations

import unicodedata

MAX_LENGTH = 254  # RFC 5321's path limit, and the column's length


def _fold(text: str) -> str:
    """NFKC, case-fold, upper/lower round trip, repeated until nothing changes."""
    text = unicodedata.normalize("NFKC", text)
    if text.isascii():
        return text.lower()
    for _ in range(4):
        folded = unicodedata.normalize("NFKC", text.casefold().upper().lower())
        if folded == text:
            break
        text = folded
    return text


def _domain(domain: str) -> str:
    folded = _fold(domain)
    if folded.isascii():
        return folded
    try:
        # The same IDNA conversion Django's EmailValidator applies to the domain.
        return folded.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return folded  # not a valid domain: it can match nothing, but it still keys consistently


def canonical_email(value) -> str:
    """The canonical form of ``value`` (an address, or anything typed where one was asked).

    Idempotent: ``canonical_email(canonical_email(x)) == canonical_email(x)``. Not a
    validator: anything that is not a string gives ``""``, and a string without ``@`` is
    folded as a whole, so every input still has one stable key.
    """
    if not isinstance(value, str):
        return ""
    if not value.isascii():
        # JSON can carry lone surrogates ("\ud800"), which no database or hash can encode.
        value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    value = value.strip()
    if not value:
        return ""
    local, at, domain = value.rpartition("@")
    if not at:
        return _fold(value)
    return f"{_fold(local)}@{_domain(domain)}"


def new_email_problem(value: str) -> str | None:
    """Why ``value`` (a syntactically valid address) cannot become an account's address, or None.

    The local part must be plain ASCII as typed: look-alike letters (``ſ``, ``ı``,
    full-width or accented forms) are refused rather than guessed at. IDN domains are
    fine (stored as punycode).
    """
    local = value.strip().rpartition("@")[0]
    if not local.isascii():
        return ("Use only plain ASCII letters, digits and punctuation before the @ "
                "(accented and look-alike letters are not accepted).")
    if len(canonical_email(value)) > MAX_LENGTH:
        return f"Ensure this address has no more than {MAX_LENGTH} characters (its domain written as punycode)."
    return None
