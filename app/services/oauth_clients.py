"""An integration's OAuth client: the redirect URI to register, saving the client id and
secret (a rotated secret reaches every account issued under that id), and saying when the
provider refused a client accounts still use.

Client secrets are write-only: they are stored sealed and never shown.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import ValidationError
from app.integrations import catalog_entry
from app.integrations.vault import Vault
from app.models import Account, Integration, OAuthClient
from app.services.integration_fields import EMPTY_FIELDS


def redirect_uri(public_url: str) -> str:
    """The exact OAuth redirect URI to register at providers."""
    return f"{public_url.rstrip('/')}/oauth/callback"


def set_client(
    session: Session,
    integration: Integration,
    vault: Vault,
    client_id: str | None,
    client_secret: str | None,
) -> None:
    """Save the OAuth client: a new secret for the same client id reaches every account that
    client issued; a new client id gets its own row (older accounts keep theirs)."""
    if client_id is None and client_secret is None:
        return
    current = integration.current_client
    new_id = checked_client_id(client_id, current)
    same_id = list(
        session.scalars(
            select(OAuthClient)
            .where(OAuthClient.integration_id == integration.id, OAuthClient.client_id == new_id)
            .order_by(OAuthClient.id.desc())
        )
    )
    secret_enc: str | None = None
    if client_secret:
        secret_enc = vault.encrypt(client_secret)
        # One client id has one secret at the provider: a rotated secret must reach the
        # accounts issued under it, or their refreshes fail with invalid_client.
        for row in same_id:
            row.client_secret_enc = secret_enc
            row.rejected_with = None
            row.rejected_at = None
    elif not same_id and current is not None:
        secret_enc = current.client_secret_enc  # a new id with a blank secret keeps the saved one
    if same_id:
        client = same_id[0]
    else:
        client = OAuthClient(
            integration_id=integration.id, client_id=new_id, client_secret_enc=secret_enc
        )
        session.add(client)
    session.flush()
    integration.current_client_id = client.id
    integration.current_client = client


def checked_client_id(client_id: str | None, current: OAuthClient | None) -> str:
    """The client id a save keeps: the one typed, else the current one; one is required."""
    new_id = (client_id or "").strip() or (current.client_id if current else "")
    if not new_id:
        raise ValidationError(EMPTY_FIELDS["client_id"], field="client_id")
    if len(new_id) > catalog_entry.MAX_CLIENT_ID_LENGTH:
        raise ValidationError(
            f"the client id must be at most {catalog_entry.MAX_CLIENT_ID_LENGTH} characters",
            field="client_id",
        )
    return new_id


def client_problem(session: Session, integration: Integration) -> str | None:
    """In words: the provider refused an OAuth client that accounts still use, if it did."""
    rows = session.execute(
        select(OAuthClient, func.count(Account.id))
        .join(Account, Account.oauth_client_id == OAuthClient.id, isouter=True)
        .where(OAuthClient.integration_id == integration.id, OAuthClient.rejected_with.is_not(None))
        .group_by(OAuthClient.id)
    ).all()
    current = integration.current_client_id
    for client, accounts in rows:
        if client.id != current and not accounts:
            continue  # an old client nobody uses any more
        when = client.rejected_at.strftime("%Y-%m-%d %H:%M UTC") if client.rejected_at else ""
        return (
            f"The provider refused the OAuth client {client.client_id} ({client.rejected_with}) "
            f"on a token refresh {when}: the client id or secret is wrong or was changed at "
            f"the provider. {accounts} connected account(s) cannot refresh until an admin "
            "saves the current client secret here."
        )
    return None
