"""Disconnecting an account: revoke its token at the provider, then delete it; a failed
revocation keeps the account and says why, unless the person removes it anyway. Flush, never
commit (the request edge commits)."""

from __future__ import annotations

import logging

import requests
from sqlalchemy.orm import Session

from app.errors import RevocationFailed, ValidationError
from app.integrations import catalog_entry, oauth
from app.integrations.vault import Vault
from app.models import Account, Integration
from app.services import webhooks
from app.services.connections import oauth_client

log = logging.getLogger(__name__)


def disconnect(
    session: Session,
    account: Account,
    vault: Vault,
    http: requests.Session | None = None,
    *,
    remove_anyway: bool = False,
) -> None:
    """Revoke at the provider when it has a revoke URL, then delete. A failed revocation
    keeps the account and raises RevocationFailed, unless `remove_anyway` is set."""
    integration = session.get(Integration, account.integration_id)
    revocable = (
        integration is not None
        and integration.revoke_url
        and account.credentials_enc
        and integration.auth_mode in catalog_entry.OAUTH_MODES
    )
    if revocable and not remove_anyway:
        assert integration is not None
        _revoke(integration, account, vault, http)
    if integration is not None:
        webhooks.announce_disconnected(session, account, integration, reason="disconnected")
    session.delete(account)
    session.flush()


def _revoke(
    integration: Integration, account: Account, vault: Vault, http: requests.Session | None
) -> None:
    creds = vault.decrypt_json(account.credentials_enc or "")
    token, hint = (
        (creds["refresh_token"], "refresh_token")
        if creds.get("refresh_token")
        else (creds.get("access_token", ""), "access_token")
    )
    then = (
        "The account is still connected: try again, or remove it anyway (the token may "
        "then stay valid at the provider until it expires)."
    )
    try:
        client, secret = oauth_client(integration, vault, account.oauth_client_id)
    except ValidationError:
        raise RevocationFailed(
            f"{integration.name} has no OAuth client left to revoke the token with. {then}",
            reachable=False,
        ) from None
    try:
        oauth.revoke(
            oauth.OAuthSettings.of(integration, account.parameters),
            client_id=client.client_id,
            client_secret=secret,
            token=token,
            token_type_hint=hint,
            http=http,
        )
    except oauth.OAuthProviderError as exc:
        log.warning(
            "revocation of account %s at %s failed: %s", account.id, integration.key, exc.error
        )
        if exc.error == oauth.NOT_REACHED:
            said = f"{integration.name} could not be reached to revoke the token"
        elif exc.error == "invalid_response":  # no refusal: an answer past its size cap
            said = f"{integration.name}'s answer to the revocation could not be read ({exc})"
        else:
            said = f"{integration.name} refused to revoke the token ({exc})"
        raise RevocationFailed(
            f"{said}. {then}", reachable=exc.error != oauth.NOT_REACHED
        ) from None
