"""Which addresses an account may take (docs/accounts.md, "Email addresses").

The canonical form itself is shared vocabulary and lives in the hub
(``dashtam.email_address.canonical_email``); it is re-exported here under the name
accounts code has always imported.

New addresses (registration, email change) must have a plain ASCII local part:
:func:`new_email_problem` says why one is refused. So every stored address has an
ASCII local part, and a look-alike spelling typed at login either folds onto the one
account it spells (and counts toward that account's lockout) or reaches none.
"""

from __future__ import annotations

from dashtam.email_address import canonical_email

__all__ = ["MAX_LENGTH", "canonical_email", "new_email_problem"]

MAX_LENGTH = 254  # RFC 5321's path limit, and the column's length


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
