"""The one canonical form of an email address (docs/accounts.md, "Email addresses").

Every place that stores, compares or counts an address (registration, login, resend,
reset, email change, the lockout and rate-limit keys, admin search, management
commands) goes through :func:`canonical_email`, and every lookup is an exact match
on the result. Nothing here imports Django, so the settings, the rate limiter, management
commands of every app and the migrations can use it. It lives in the hub because
they all key by it; accounts stores it.

The form:

* surrounding whitespace is dropped;
* the local part is Unicode NFKC, then case-folded, then taken through an upper/lower
  round trip until it is stable. That folds the compatibility spellings that
  ``str.lower()`` kept apart and PostgreSQL's ``UPPER()`` joined: ``ſ`` (U+017F) becomes
  ``s``, ``ı`` (U+0131) becomes ``i``, ``ＵＳＥＲ`` becomes ``user``;
* the domain is folded the same way and converted to IDNA ASCII (punycode), lower-case.

Which new addresses accounts accept is accounts' own rule (``accounts.email_address``).
"""

from __future__ import annotations

import unicodedata


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
