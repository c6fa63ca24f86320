"""Signing in at the provider (OAuth2 authorization code): `start_authorization` records a
single-use state (bound to the browser session, user, purpose and grant; PKCE verifier
encrypted) and returns the provider's URL; `complete_authorization` checks the callback,
exchanges the code and stores the account. Flush, never commit (the request edge commits)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound, OAuthCallbackError, ValidationError
from app.integrations import oauth
from app.integrations.vault import Vault
from app.models import Account, Integration, OAuthState
from app.models._types import utcnow
from app.services import oauth_states
from app.services.account_rules import check_slot, validate_label, validate_parameters
from app.services.connections import oauth_client, store_oauth_account

STATE_LIFETIME = timedelta(minutes=10)
# Where the operator lists the origins `return_to` may point at (docs/deploy.md).
RETURN_ORIGINS_SETTING = "SCRIPTBOX_ALLOWED_RETURN_ORIGINS"


def check_return_to(return_to: str | None, allowed_return_origins: Iterable[str]) -> None:
    """Refuse a `return_to` that is not on an allowed origin (no open redirects)."""
    if not return_to:
        return
    parts = urlsplit(return_to)
    if not parts.scheme or not parts.netloc:
        # A path ("/done"), "//host" or "javascript:..." has no origin to list: the 400
        # named "://" or "javascript://" as one for the operator to add to the setting.
        raise ValidationError(
            "return_to must be an absolute URL with its scheme and host, such as "
            "https://app.example.com/done, on an allowed origin",
            field="return_to",
        )
    origin = oauth_states.origin(return_to)
    allowed = {oauth_states.origin(o) for o in allowed_return_origins}
    if origin in allowed:
        return
    # The fix is the operator's, so the message names the setting (a 400 that only said
    # "an allowed origin" left the embedding app's developer guessing where that is set).
    if not allowed:
        raise ValidationError(
            "return_to must be on an allowed origin, and this server allows none: its "
            f"operator lists them in {RETURN_ORIGINS_SETTING} (comma-separated origins such "
            "as https://app.example.com); or leave return_to out",
            field="return_to",
        )
    raise ValidationError(
        f"return_to must be on an allowed origin: {origin} is not in "
        f"{RETURN_ORIGINS_SETTING}; ask the server's operator to add it there "
        "(comma-separated origins such as https://app.example.com)",
        field="return_to",
    )


def start_authorization(
    session: Session,
    *,
    integration: Integration,
    user_id: int,
    facility_id: int,
    purpose: str,
    session_binding: str,
    redirect_uri: str,
    vault: Vault,
    label: str = "",
    parameters: Mapping[str, Any] | None = None,
    grant_id: str | None = None,
    return_to: str | None = None,
    allowed_return_origins: Iterable[str] = (),
) -> str:
    """Record a single-use state (bound to session, user, purpose, grant) and return the
    provider's authorization URL."""
    if integration.auth_mode != "oauth2":
        raise ValidationError(f"{integration.name} does not sign in with OAuth2")
    if integration.facility_id != facility_id:
        raise NotFound("no such integration")
    check_return_to(return_to, allowed_return_origins)
    params = validate_parameters(integration, parameters)
    label = validate_label(label)
    owner = "master" if purpose == "master" else "user"
    check_slot(session, integration, owner=owner, user_id=user_id, label=label)
    client, _secret = oauth_client(integration, vault)
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64) if integration.pkce else None
    session.add(
        OAuthState(
            state_hash=oauth_states.state_hash(state),
            purpose=purpose,
            session_binding=session_binding,
            user_id=user_id,
            facility_id=facility_id,
            integration_id=integration.id,
            oauth_client_id=client.id,
            grant_id=grant_id,
            label=label,
            parameters=params,
            code_verifier_enc=vault.encrypt(verifier) if verifier else None,
            return_to=return_to,
            expires_at=utcnow() + STATE_LIFETIME,
        )
    )
    session.flush()
    return oauth.authorization_url(
        oauth.OAuthSettings.of(integration, params),
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        state=state,
        code_verifier=verifier,
    )


def state_purpose(session: Session, state: str) -> str | None:
    """What a callback's `state` was issued for (None when unknown): who may finish it."""
    return session.scalar(
        select(OAuthState.purpose).where(
            OAuthState.state_hash == oauth_states.state_hash(state or "")
        )
    )


def complete_callback(
    session: Session,
    *,
    query: Mapping[str, str],
    session_binding: str,
    redirect_uri: str,
    vault: Vault,
    http: requests.Session | None = None,
) -> tuple[Account, OAuthState]:
    """`complete_authorization` with the callback's query parameters: the one reader of
    them for every callback (signed-in and connect-link alike), so none skips `iss`."""
    return complete_authorization(
        session,
        state=query.get("state", ""),
        code=query.get("code"),
        error=query.get("error"),
        error_description=query.get("error_description"),
        iss=query.get("iss"),
        session_binding=session_binding,
        redirect_uri=redirect_uri,
        vault=vault,
        http=http,
    )


def complete_authorization(
    session: Session,
    *,
    state: str,
    code: str | None,
    error: str | None,
    session_binding: str,
    redirect_uri: str,
    vault: Vault,
    http: requests.Session | None = None,
    error_description: str | None = None,
    iss: str | None = None,
) -> tuple[Account, OAuthState]:
    """Check the callback's state, issuer and the user's role, exchange the code and store
    the account."""
    row = oauth_states.consume_state(session, state, session_binding)
    if row.expires_at < utcnow():
        raise OAuthCallbackError("This sign-in took too long and expired. Start it again.")
    integration = session.get(Integration, row.integration_id)
    if integration is None:
        raise OAuthCallbackError("The integration no longer exists.")
    oauth_states.check_issuer(integration, iss)
    if error:
        if error == "access_denied":
            raise OAuthCallbackError(
                "You declined the sign-in at the provider; nothing was connected."
            )
        detail = f" ({error_description.strip()[:300]})" if error_description else ""
        raise OAuthCallbackError(f"The provider reported an error: {error}{detail}.")
    if not code:
        raise OAuthCallbackError("The provider sent no authorization code.")
    oauth_states.check_still_allowed(session, row)
    owner = oauth_states.owner_of(row.purpose)
    client, secret = oauth_client(integration, vault, row.oauth_client_id)
    verifier = vault.decrypt(row.code_verifier_enc) if row.code_verifier_enc else None
    try:
        token = oauth.exchange_code(
            oauth.OAuthSettings.of(integration, row.parameters),
            client_id=client.client_id,
            client_secret=secret,
            redirect_uri=redirect_uri,
            code=code,
            code_verifier=verifier,
            http=http,
        )
    except oauth.OAuthProviderError as exc:
        # An admin signing in the master account is the one who can fix the client.
        remedy = (
            "Check the client id and secret in the integration's settings (Test connection "
            "asks the provider), then add the master account again."
            if owner == "master"
            else "Try again, or ask an admin to check the integration's settings."
        )
        raise OAuthCallbackError(
            f"The provider refused the sign-in ({exc.error}). {remedy}"
        ) from None
    account = store_oauth_account(
        session,
        integration=integration,
        owner=owner,
        user_id=row.user_id,
        label=row.label,
        parameters=row.parameters,
        client=client,
        token=token,
        vault=vault,
        http=http,
    )
    return account, row
