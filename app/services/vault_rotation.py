"""Re-encrypt every stored secret under the vault's newest key (`scriptbox rotate-keys`)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import db
from app.integrations.vault import Vault
from app.models import Account, Integration, OAuthClient, OAuthState

_ENCRYPTED = (
    (OAuthClient, "client_secret_enc"),
    (Integration, "defaults_enc"),
    (Account, "credentials_enc"),
    (OAuthState, "code_verifier_enc"),
)


def rotate_all(*, vault: Vault, session: Session | None = None) -> int:
    """Rotate every `*_enc` column; commits (a CLI edge). Returns how many were rotated."""
    session = session or db.session()
    count = 0
    for model, column in _ENCRYPTED:
        for row in session.scalars(select(model).where(getattr(model, column).is_not(None))):
            setattr(row, column, vault.rotate(getattr(row, column)))
            count += 1
    session.commit()
    return count
