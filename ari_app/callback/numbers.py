"""The national number plan: which numbers a callback may dial.

Pure functions, so the rule the caller hears ("that number cannot be called
back") and the rule the dialplan enforces (an 8-digit pattern) are tested alike.
"""

from __future__ import annotations

import hashlib

from ari_app.config.callback import NumberPlan


class BadNumber(ValueError):
    """A number the callback must not dial, with the reason in plain words."""


def national(raw: str, plan: NumberPlan) -> str:
    """The national form of a number a caller typed or a caller id, or BadNumber.

    Typed digits are taken as they are; a caller id may carry the country code
    (974XXXXXXXX, +974..., 00974...), which is removed. Anything else that is
    international, too short or long, or starts with a digit the plan does not
    allow (toll-free, premium, short codes) is refused."""
    digits = raw.strip()
    if not digits:
        raise BadNumber("no number (anonymous caller)")
    if digits.startswith("+"):
        digits = "00" + digits[1:]
    if not digits.isdigit():
        raise BadNumber(f"{_shown(raw)} holds characters other than digits")
    for prefix in ("00" + plan.country_code, plan.country_code):
        rest = digits[len(prefix):]
        if digits.startswith(prefix) and len(rest) == plan.length:
            digits = rest
            break
    if digits.startswith("0"):
        raise BadNumber(f"{_shown(digits)} is international or has a trunk prefix")
    if len(digits) != plan.length:
        raise BadNumber(f"{_shown(digits)} has {len(digits)} digits, a national number "
                        f"has {plan.length}")
    if digits[0] not in plan.first_digits:
        raise BadNumber(f"{_shown(digits)} starts with {digits[0]}: toll-free, premium or "
                        f"short numbers are not called back")
    return digits


def masked(number: str) -> str:
    """What an agent's screen and the records show: the last two digits only."""
    return "*" * max(0, len(number) - 2) + number[-2:]


def number_key(number: str, salt: str) -> str:
    """A salted hash of a number, so Redis keys never hold it in the clear."""
    return hashlib.sha256((salt + number).encode()).hexdigest()[:32]


def _shown(number: str) -> str:
    return masked(number) if len(number) > 4 else "the number"
