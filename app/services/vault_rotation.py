"""Re-encrypt every stored secret under the vault's newest key (`scriptbox rotate-keys`)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import db
from app.integrations.vault import Vault, VaultError
from app.models import Account, Integration, OAuthClient, OAuthState, WebhookTrigger

# Each encrypted column, with what an operator calls the secrets it holds.
_ENCRYPTED = (
    (OAuthClient, "client_secret_enc", "OAuth client secrets"),
    (Integration, "defaults_enc", "integration default credentials"),
    (Account, "credentials_enc", "connected account credentials"),
    (OAuthState, "code_verifier_enc", "pending OAuth sign-in verifiers"),
    (WebhookTrigger, "signing_secret_enc", "webhook trigger signing secrets"),
)


def rotate_all(*, vault: Vault, session: Session | None = None) -> int:
    """Rotate every `*_enc` column; commits (a CLI edge). Returns how many were rotated.

    All or nothing: when a secret cannot be decrypted with the vault's keys, nothing is
    stored and VaultError says which kinds of secret, and how many, the keys cannot read.
    """
    session = session or db.session()
    count = 0
    unreadable: dict[str, int] = {}
    for model, column, kind in _ENCRYPTED:
        for row in session.scalars(select(model).where(getattr(model, column).is_not(None))):
            try:
                setattr(row, column, vault.rotate(getattr(row, column)))
            except VaultError:
                unreadable[kind] = unreadable.get(kind, 0) + 1
            count += 1
    if unreadable:
        session.rollback()
        kinds = ", ".join(f"{kind}: {number}" for kind, number in unreadable.items())
        total = sum(unreadable.values())
        raise VaultError(
            f"SCRIPTBOX_SECRET_KEYS cannot decrypt {total} stored "
            f"secret{'' if total == 1 else 's'} "
            f"({kinds}); nothing was re-encrypted: keep the key they were written with in "
            "SCRIPTBOX_SECRET_KEYS, after the new key, until rotate-keys has run"
        )
    session.commit()
    return count
