"""Signing secrets of webhook triggers, kept vault-encrypted, and the check of a POST's
signature by the trigger's scheme (SignatureScheme):

- `github`: a secret the server makes, and GitHub's `X-Hub-Signature-256: sha256=<hex
  HMAC>` of the body (as Gitea, Forgejo and many other senders sign their webhooks);
- `slack`: the Slack app's signing secret (Slack makes it: the trigger's maker pastes it),
  and Slack's `X-Slack-Signature: v0=<hex HMAC of "v0:{timestamp}:{body}">` with
  `X-Slack-Request-Timestamp`, refused when that time is more than 5 minutes from now
  (a replayed request);
- `standard`: the Standard Webhooks spec (Svix, Resend, Clerk, Supabase, OpenAI...): the
  sender's `whsec_<base64>` secret (the sender makes it: the trigger's maker pastes it),
  and `webhook-signature: v1,<base64 HMAC of "{id}.{timestamp}.{body}">` (one of several,
  space-separated) with `webhook-id` and `webhook-timestamp`, refused when that time is
  more than 5 minutes from now. The `standardwebhooks` package checks the signature; a
  request's `webhook-id`, which it signs, is its delivery id (app.services.
  trigger_deliveries), so a replay of it within the 5 minutes starts no second run.

A secret we made is shown once, when its trigger is made, and never again; a pasted one is
never shown (not in the API, not in a log): to change either, a scripter makes a new
trigger and revokes the old one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import get_args

from standardwebhooks import Webhook, WebhookVerificationError

from app.errors import SignatureInvalid, ValidationError
from app.integrations.vault import Vault
from app.models import WebhookTrigger
from app.models.triggers import SignatureScheme
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

STANDARD_ID = "webhook-id"
STANDARD_TIMESTAMP = "webhook-timestamp"
STANDARD_SIGNATURE = "webhook-signature"
_STANDARD_HEADERS = (STANDARD_ID, STANDARD_TIMESTAMP, STANDARD_SIGNATURE)
_WHSEC = "whsec_"
# The spec asks senders for 24 to 64 random bytes; the bounds only catch a wrong paste.
_STANDARD_SECRET_BYTES = (16, 128)
_STANDARD_ADVICE = (
    "The sender signs each request with the endpoint's signing secret (whsec_..., in its"
    " webhook settings), which must be the one pasted when the trigger was made; a"
    " scripter who pasted another, or whose sender made a new one, must make a new trigger"
)

# The schemes whose secret the sender makes, pasted by the trigger's maker: never shown.
PASTED: frozenset[SignatureScheme] = frozenset({"slack", "standard"})

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


def standard_secret(pasted: str | None) -> str:
    """A pasted Standard Webhooks secret (`whsec_<base64>`), stripped of the blanks a paste
    brings (and of the `v1,` Supabase shows before it); a 400 in words (naming no part of
    it) when there is none or it cannot be one."""
    secret = (pasted or "").strip()
    secret = secret.removeprefix("v1,")  # Supabase shows its hooks' secrets as v1,whsec_...
    if not secret:
        raise ValidationError(
            "paste the sender's signing secret (whsec_ and then base64, in its webhook"
            " settings): it signs each request with it",
            field="signing_secret",
        )
    low, high = _STANDARD_SECRET_BYTES
    if not secret.startswith(_WHSEC) or not low <= len(_whsec_key(secret)) <= high:
        raise ValidationError(
            f"this is not a Standard Webhooks signing secret (whsec_ and then the base64 of"
            f" {low} to {high} random bytes, in one word): copy it again from the sender's"
            " webhook settings",
            field="signing_secret",
        )
    return secret


def _whsec_key(secret: str) -> bytes:
    """The key a `whsec_` secret holds (b"" for no base64): strictly decoded, where the
    library skips what is not base64 and would sign with another key than the sender's."""
    encoded = secret.removeprefix(_WHSEC)
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        return b""


def pasted_secret(scheme: SignatureScheme, pasted: str | None) -> str:
    """The secret pasted for a PASTED `scheme`, checked as that scheme's (a 400 in words)."""
    return slack_secret(pasted) if scheme == "slack" else standard_secret(pasted)


def signature(secret: str, body: bytes) -> str:
    """The header value a sender that knows `secret` sends with `body` (GitHub's scheme)."""
    return _SCHEME + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Slack-Signature Slack sends with `body` signed at `timestamp`."""
    base = f"{_SLACK_VERSION}:{timestamp}:".encode() + body
    return f"{_SLACK_VERSION}=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_by_slack(trigger: WebhookTrigger) -> bool:
    """Whether the trigger's POSTs are checked by Slack's scheme (their bodies are Slack's)."""
    return scheme_of(trigger) == "slack"


def scheme_of(trigger: WebhookTrigger) -> SignatureScheme | None:
    """How the trigger's POSTs are signed, or None when it checks no signature."""
    if trigger.signing_secret_enc is None:
        return None
    kept = trigger.signature_scheme
    return kept if kept in get_args(SignatureScheme) else "github"  # type: ignore[return-value]


def delivery_header(trigger: WebhookTrigger) -> str | None:
    """The header naming a delivery that the trigger's scheme signs (Standard Webhooks'
    webhook-id, the same on the sender's retries), or None: it comes before any other
    delivery id, which whoever replays a signed request within its time could change."""
    return STANDARD_ID if scheme_of(trigger) == "standard" else None


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
    scheme = scheme_of(trigger)
    if scheme == "slack":
        _check_slack(secret, body, header, time.time() if now is None else now)
    elif scheme == "standard":
        _check_standard(secret, body, header, time.time() if now is None else now)
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


def _check_standard(secret: str, body: bytes, header: Header, now: float) -> None:
    sent = {name: header(name) or "" for name in _STANDARD_HEADERS}
    missing = [name for name, value in sent.items() if not value.strip()]
    if missing:
        raise SignatureInvalid(
            "this trigger needs a Standard Webhooks signature: the request carries no"
            f" {' or '.join(missing)}. {_STANDARD_ADVICE}",
            field=missing[0],
        )
    # Ours before the library's (which reads the clock itself): the project's one rule for
    # a signed time (only digits, as the spec's Unix seconds), said in words.
    stale = SignatureInvalid(
        f"this request's {STANDARD_TIMESTAMP} is not within {MAX_AGE_S // 60} minutes of"
        " now: a stale (or replayed) request starts nothing. The sender signs each attempt,"
        " retries included, at the time it sends it; if this server's clock is wrong, set"
        " it right",
        field=STANDARD_TIMESTAMP,
    )
    if recent(sent[STANDARD_TIMESTAMP], now=now) is None:
        raise stale
    try:
        Webhook(secret).verify(body, sent, json_parse=False)
    except WebhookVerificationError as refused:
        # Its time check fails only where ours just passed: at the 5 minutes' edge.
        if "timestamp" in str(refused).lower():
            raise stale from None
        raise SignatureInvalid(
            f"this request's {STANDARD_SIGNATURE} is wrong: none of its v1 signatures signs"
            f" its {STANDARD_ID}, {STANDARD_TIMESTAMP} and body. {_STANDARD_ADVICE}",
            field=STANDARD_SIGNATURE,
        ) from None
