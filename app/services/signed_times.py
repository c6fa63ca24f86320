"""The time a signed request says it was signed, taken only when it is recent: a replay
carries an old one, and changing it breaks the signature (Slack's triggers, our webhooks)."""

from __future__ import annotations

# Slack's own advice, and what our webhooks' receivers are told: older is a replay.
MAX_AGE_S = 5 * 60
# Unix seconds have 10 digits until the year 2286: a longer time is none a sender sends, and
# would be too long for the arithmetic (a float overflows past 308 digits, int() past 4300).
_DIGITS = 12


def recent(stamp: str, *, now: float, max_age_s: float = MAX_AGE_S) -> int | None:
    """`stamp` (the header's text) as Unix seconds when it is ASCII digits, no more than 12
    of them, at most `max_age_s` from `now` either way (a sender's clock may run ahead);
    else None."""
    stamp = stamp.strip()
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > _DIGITS:
        return None
    sent = int(stamp)
    return sent if abs(now - sent) <= max_age_s else None
