"""A Slack-signed trigger's X-Slack-Request-Timestamp comes from whoever has the URL: any
shape of it (too many digits for a float or for Python's int, a sign, a fraction, other
digits than ASCII) is a 401 signature_invalid in words, never a 500. Signed with the
trigger's own secret, so only the time can refuse it."""

from __future__ import annotations

import pytest

from app.errors import SignatureInvalid
from app.integrations.vault import Vault, generate_key
from app.models import WebhookTrigger
from app.services.trigger_signatures import (
    SLACK_SIGNATURE,
    SLACK_TIMESTAMP,
    check,
    slack_signature,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_765_000_000.0
BODY = b'{"type":"event_callback","event_id":"Ev1"}'


def _check(stamp: str) -> None:
    vault = Vault([generate_key()])
    trigger = WebhookTrigger(signing_secret_enc=vault.encrypt(SECRET), signature_scheme="slack")
    headers = {SLACK_TIMESTAMP: stamp, SLACK_SIGNATURE: slack_signature(SECRET, stamp, BODY)}
    check(trigger, vault=vault, body=BODY, header=headers.get, now=NOW)


@pytest.mark.parametrize("stamp", [
    "9" * 400,  # past a float: now - int(stamp) overflowed (OverflowError)
    "9" * 5000,  # past the digits Python reads into an int (ValueError)
    "0" * 5000 + "1765000000",  # the right time behind 5000 zeros: no time Slack sends
    "-" + "9" * 400, "-1765000000", "1765000000.5", "1.765e9", "+1765000000", "0x69",
    "\u0661\u0667\u0666\u0665",  # Arabic-Indic digits: isdigit() says yes
])
def test_a_timestamp_of_any_shape_is_refused_in_words(stamp: str) -> None:
    with pytest.raises(SignatureInvalid) as refused:
        _check(stamp)
    assert "is not within 5 minutes of now" in refused.value.message


def test_the_time_slack_sends_is_taken() -> None:
    _check(str(int(NOW) - 60))
    _check(str(int(NOW) + 60))
