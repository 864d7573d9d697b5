"""What a first or last name may be: plain, single-line text that cannot carry a link.

Names are printed in emails and shown to staff, so they must not be a way to put an
attacker's message (a second line, a URL, an address to write to) in front of anyone.
"""

from __future__ import annotations

import re
import unicodedata

from django.conf import settings

# Zero-width (non-)joiners are part of the spelling of names in several scripts
# (Persian, Hindi, ...); every other invisible format character is refused.
_ALLOWED_FORMAT = {"\u200c", "\u200d"}
# Line and paragraph separators and controls (categories Zl, Zp, Cc), format characters (Cf:
# bidirectional overrides, zero-width spaces), surrogates, private use and unassigned code points.
_REFUSED_CATEGORIES = {"Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn"}

# Checked on the NFKC form, so full-width or other look-alike dots, slashes and @ count too.
_URL = re.compile(
    r"[a-z][a-z0-9+.\-]*:/"                                  # a scheme: http://, https:/, ftp://
    r"|\b(?:mailto|javascript|data|tel|sms|callto|file):\S"  # links without slashes
    r"|www\d{0,3}\."                                        # www.example
    r"|[^\s.]\.[a-z]{2,63}(?![a-z])"                        # a host name: evil.example, pay.me/x
    r"|\d{1,3}(?:\.\d{1,3}){3}",                            # an IPv4 address
    re.IGNORECASE,
)
NAME_RULE = ("Names are plain text on one line: no line breaks or control characters, "
             "no web address and no email address.")


def name_problems(value: str) -> list[str]:
    """Every reason ``value`` (already trimmed) is not an acceptable name; empty when it is."""
    problems = []
    limit = settings.ACCOUNT_NAME_MAX_LENGTH
    if len(value) > limit:
        problems.append(f"Ensure this field has no more than {limit} characters.")
    if any(unicodedata.category(ch) in _REFUSED_CATEGORIES and ch not in _ALLOWED_FORMAT for ch in value):
        problems.append("Names cannot contain line breaks, control characters or invisible formatting "
                        "characters.")
    folded = unicodedata.normalize("NFKC", value)
    if "@" in folded:
        problems.append("Names cannot contain an email address.")
    elif _URL.search(folded):
        problems.append("Names cannot contain a web address.")
    return problems
