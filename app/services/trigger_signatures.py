"""Signing secrets of webhook triggers: made by the server, kept vault-encrypted, and the
GitHub-style check of a body's signature (`X-Hub-Signature-256: sha256=<hex HMAC>`, as
Gitea, Forgejo and many other senders sign their webhooks).

A secret is shown once, when its trigger is made, and never again (not in the API, not in
a log): to change it, a scripter makes a new trigger and revokes the old one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from app.errors import SignatureInvalid
from app.integrations.vault import Vault
from app.models import WebhookTrigger

HEADER = "X-Hub-Signature-256"
_SCHEME = "sha256="
# Tells a signing secret apart from a trigger's token (sbh_) in a leaked paste or chat.
SECRET_PREFIX = "sbs_"
REFUSED = (
    "this trigger needs a signature: set the webhook's secret at the sender to the one"
    " shown when the trigger was made (it then signs each body in the"
    f" {HEADER} header); a scripter who no longer has it must make a new trigger"
)


def new_secret() -> str:
    """A fresh signing secret: 32 random bytes, URL-safe (pastes into any sender's form)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, body: bytes) -> str:
    """The header value a sender that knows `secret` sends with `body`."""
    return _SCHEME + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check(trigger: WebhookTrigger, *, vault: Vault, body: bytes, sent: str | None) -> None:
    """Nothing for a trigger without a secret, or whose `sent` header signs `body` (the
    raw bytes, before anything parses them); else SignatureInvalid in words."""
    if trigger.signing_secret_enc is None:
        return
    expected = signature(vault.decrypt(trigger.signing_secret_enc), body)
    # Compared in constant time, as bytes: a header of non-ASCII text is simply wrong.
    if sent is None or not hmac.compare_digest(
        expected.encode(), sent.strip().encode("utf-8", "replace")
    ):
        raise SignatureInvalid(REFUSED, field=HEADER)
