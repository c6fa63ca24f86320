"""A signed request's time (Slack's X-Slack-Request-Timestamp, our Scriptbox-Timestamp) is
taken up to exactly five minutes from now either way, in digits a sender sends; any other
shape is refused, never an exception (it comes from whoever has the URL)."""

from __future__ import annotations

import pytest

from app.services import webhooks
from app.services.signed_times import recent

NOW = 1_765_000_000.0
SECRET = "whsec-test"
BODY = b'{"event":"run.finished"}'


@pytest.mark.parametrize(("stamp", "taken"), [
    ("1765000000", 1765000000),
    ("1764999700", 1764999700),  # exactly 300 s ago
    ("1765000300", 1765000300),  # exactly 300 s ahead: the sender's clock runs fast
    (" 1765000000\n", 1765000000),  # a header's surrounding white space
    ("1764999699", None),  # 301 s ago: a replay
    ("1765000301", None),  # 301 s ahead
    ("0", None),
    ("", None),
    ("soon", None),
    ("9" * 400, None),  # past a float: now - int(stamp) overflowed
    ("9" * 5000, None),  # past the digits int() reads
    ("0" * 400 + "1765000000", None),  # the right time, in no shape a sender sends
    ("-1765000000", None),
    ("+1765000000", None),
    ("1_765_000_000", None),
    ("1765000000.5", None),
    ("\u0661\u0667\u0666\u0665", None),  # Arabic-Indic digits: isdigit() says yes
])
def test_a_time_is_taken_only_in_digits_within_five_minutes(stamp: str, taken: int | None) -> None:
    assert recent(stamp, now=NOW) == taken


def test_a_tolerance_of_its_own_moves_the_edge() -> None:
    assert (recent("1764999940", now=NOW, max_age_s=60),
            recent("1764999939", now=NOW, max_age_s=60)) == (1764999940, None)


@pytest.mark.parametrize("stamp", ["9" * 400, "+1765000000", "1_765_000_000"])
def test_a_webhook_receiver_refuses_a_time_of_another_shape(stamp: str) -> None:
    # Signed over what int() reads of it, so only the time's shape can refuse it (400
    # digits raised OverflowError; the others were taken).
    signature = webhooks.sign(SECRET, int(stamp), BODY)
    assert not webhooks.verify(SECRET, stamp, BODY, signature, now=NOW)


def test_a_webhook_receiver_takes_a_time_exactly_five_minutes_old() -> None:
    signature = webhooks.sign(SECRET, 1764999700, BODY)
    assert webhooks.verify(SECRET, "1764999700", BODY, signature, now=NOW)
