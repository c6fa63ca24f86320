"""Signing secrets of webhook triggers, kept vault-encrypted, and the check of a POST's
signature by the trigger's scheme (SignatureScheme):

- `github`: a secret the server makes, and GitHub's `X-Hub-Signature-256: sha256=<hex
  HMAC>` of the body (as Gitea, Forgejo and many other senders sign their webhooks);
- `slack`: the Slack app's signing secret (Slack makes it: the trigger's maker pastes it),
  and Slack's `X-Slack-Signature: v0=<hex HMAC of "v0:{timestamp}:{body}">` with
  `X-Slack-Request-Timestamp`, refused when that time is more than 5 minutes from now
  (a replayed request).

A secret we made is shown once, when its trigger is made, and never again; a pasted one is
never shown (not in the API, not in a log): to change either, a scripter makes a new
trigger and revokes the old one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from app.errors import SignatureInvalid, ValidationError
from app.integrations.vault import Vault
from app.models import WebhookTrigger
from app.services.signed_times import MAX_AGE_S, recent

HEADER = "X-Hub-Signature-256"
_SCHEME = "sha256="
# Tells a signing secret apart from a trigger's token (sbh_) in a leaked paste or chat.
SECRET_PREFIX = "sbs_"
REFUSED = (
    "this trigger needs a signature: set the webhook's secret at the sender to the one"
    " shown when the trigger was made (it then signs each body in the"
    f" {HEADER} header); a scripter who no longer has it must make a new trigger"
)

SLACK_SIGNATURE = "X-Slack-Signature"
SLACK_TIMESTAMP = "X-Slack-Request-Timestamp"
_SLACK_VERSION = "v0"
# Slack's are 32 hexadecimal characters; the bounds only catch a wrong paste.
_SLACK_SECRET_LENGTHS = (16, 200)
_SLACK_ADVICE = (
    "Slack signs each request with the Slack app's signing secret (its Basic Information"
    " page), which must be the one pasted when the trigger was made; a scripter who pasted"
    " another must make a new trigger"
)

Header = Callable[[str], str | None]


def new_secret() -> str:
    """A fresh signing secret: 32 random bytes, URL-safe (pastes into any sender's form)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def slack_secret(pasted: str | None) -> str:
    """A pasted Slack signing secret, stripped of the blanks a paste brings; a 400 in words
    (naming no part of it) when there is none or it cannot be one."""
    secret = (pasted or "").strip()
    low, high = _SLACK_SECRET_LENGTHS
    if not secret:
        raise ValidationError(
            "paste the Slack app's signing secret (Basic Information → App Credentials →"
            " Signing Secret): Slack signs each request with it",
            field="signing_secret",
        )
    if not low <= len(secret) <= high or any(c.isspace() for c in secret):
        raise ValidationError(
            f"this is not a Slack signing secret (one word of {low} to {high} characters;"
            " Slack's are 32): copy it again from the Slack app's Basic Information page",
            field="signing_secret",
        )
    return secret


def signature(secret: str, body: bytes) -> str:
    """The header value a sender that knows `secret` sends with `body` (GitHub's scheme)."""
    return _SCHEME + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Slack-Signature Slack sends with `body` signed at `timestamp`."""
    base = f"{_SLACK_VERSION}:{timestamp}:".encode() + body
    return f"{_SLACK_VERSION}=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_by_slack(trigger: WebhookTrigger) -> bool:
    """Whether the trigger's POSTs are checked by Slack's scheme (their bodies are Slack's)."""
    return trigger.signing_secret_enc is not None and trigger.signature_scheme == "slack"


def _same(expected: str, sent: str | None) -> bool:
    # Compared in constant time, as bytes: a header of non-ASCII text is simply wrong.
    return sent is not None and hmac.compare_digest(
        expected.encode(), sent.strip().encode("utf-8", "replace")
    )


def check(
    trigger: WebhookTrigger,
    *,
    vault: Vault,
    body: bytes,
    header: Header,
    now: float | None = None,
) -> None:
    """Nothing for a trigger without a secret, or whose request (`header` reads one of its
    headers by name) signs `body` (the raw bytes, before anything parses them) by the
    trigger's scheme; else SignatureInvalid in words. `now`: the Unix time (the clock's)."""
    if trigger.signing_secret_enc is None:
        return
    secret = vault.decrypt(trigger.signing_secret_enc)
    if signed_by_slack(trigger):
        _check_slack(secret, body, header, time.time() if now is None else now)
    elif not _same(signature(secret, body), header(HEADER)):
        raise SignatureInvalid(REFUSED, field=HEADER)


def _check_slack(secret: str, body: bytes, header: Header, now: float) -> None:
    sent, stamp = header(SLACK_SIGNATURE), (header(SLACK_TIMESTAMP) or "").strip()
    if sent is None or not stamp:
        raise SignatureInvalid(
            f"this trigger needs Slack's signature: the request carries no {SLACK_SIGNATURE}"
            f" or {SLACK_TIMESTAMP}. {_SLACK_ADVICE}",
            field=SLACK_SIGNATURE,
        )
    if recent(stamp, now=now) is None:
        raise SignatureInvalid(
            f"this request's {SLACK_TIMESTAMP} is not within {MAX_AGE_S // 60} minutes"
            " of now: a stale (or replayed) request starts nothing. Slack sends a fresh"
            " time with each request, retries included; if this server's clock is wrong,"
            " set it right",
            field=SLACK_TIMESTAMP,
        )
    if not _same(slack_signature(secret, stamp, body), sent):
        raise SignatureInvalid(
            f"this request's {SLACK_SIGNATURE} is wrong: it does not sign this body at its"
            f" time. {_SLACK_ADVICE}",
            field=SLACK_SIGNATURE,
        )
