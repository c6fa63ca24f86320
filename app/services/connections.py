"""Connecting accounts without a redirect: codes obtained elsewhere, client credentials,
API keys and passwords, and the account row each connection writes (signing in at the
provider: services/oauth_sign_in.py; disconnecting: services/disconnection.py).
Flush, never commit (the request edge commits)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from app.errors import CredentialsRefused, InvalidFields, ProviderError, ValidationError
from app.integrations import catalog_entry, oauth
from app.integrations.identity import identify
from app.integrations.tokens import stored_tokens, token_expiry
from app.integrations.vault import Vault
from app.integrations.verification import verify_credentials
from app.models import Account, Integration, OAuthClient
from app.models._types import utcnow
from app.services import webhooks
from app.services.account_rules import check_slot, validate_label, validate_parameters
from app.services.integration_fields import noting


def oauth_client(
    integration: Integration, vault: Vault, client_row_id: int | None = None
) -> tuple[OAuthClient, str | None]:
    """The OAuth client (the given row, else the current one) and its decrypted secret."""
    client = integration.current_client
    if client_row_id is not None and (client is None or client.id != client_row_id):
        session = object_session(integration)
        client = session.get(OAuthClient, client_row_id) if session else None
    if client is None:
        raise ValidationError(
            f"{integration.name} has no OAuth client yet; an admin must enter "
            "the client id and secret on the Management page"
        )
    secret = vault.decrypt(client.client_secret_enc) if client.client_secret_enc else None
    return client, secret


def _find_account(
    session: Session, integration: Integration, owner: str, user_id: int | None, label: str
) -> Account | None:
    query = select(Account).where(
        Account.integration_id == integration.id, Account.owner_kind == owner
    )
    if owner == "user":
        query = query.where(Account.user_id == user_id, Account.label == label)
    return session.scalar(query)


def _account_for(
    session: Session, integration: Integration, owner: str, user_id: int | None, label: str
) -> Account:
    """The existing account of this owner and label, or a new one (reconnecting updates it)."""
    check_slot(session, integration, owner=owner, user_id=user_id, label=label)
    account = _find_account(session, integration, owner, user_id, label)
    if account is None:
        account = Account(
            facility_id=integration.facility_id,
            integration_id=integration.id,
            owner_kind=owner,
            user_id=user_id if owner == "user" else None,
            label=label,
            version=0,
        )
        session.add(account)
    return account


def store_oauth_account(
    session: Session,
    *,
    integration: Integration,
    owner: str,
    user_id: int | None,
    label: str,
    parameters: Mapping[str, str],
    client: OAuthClient,
    token: dict[str, Any],
    vault: Vault,
    http: requests.Session | None,
) -> Account:
    """Write the provider's `token` into the owner's account (new or reconnected)."""
    account = _account_for(session, integration, owner, user_id, label)
    reconnected = account.id is not None
    now = utcnow()
    account.parameters = dict(parameters)
    account.credentials_enc = vault.encrypt_json(stored_tokens(token))
    account.token_expires_at = token_expiry(token, now)
    account.token_issued_at = now
    account.oauth_client_id = client.id
    account.status = "active"
    account.version = (account.version or 0) + 1
    account.identity = identify(
        integration,
        creds={"access_token": str(token.get("access_token") or "")},
        parameters=account.parameters,
        vault=vault,
        http=http,
    )
    session.flush()
    _connected(session, account, integration, reconnected)
    return account


def connect_with_code(
    session: Session,
    *,
    integration: Integration,
    user_id: int,
    facility_id: int,
    code: str,
    redirect_uri: str,
    vault: Vault,
    code_verifier: str | None = None,
    label: str = "",
    parameters: Mapping[str, Any] | None = None,
    http: requests.Session | None = None,
) -> Account:
    """Complete the user's account with a code obtained elsewhere (e.g. a native app)."""
    if integration.facility_id != facility_id or integration.auth_mode != "oauth2":
        raise ValidationError(f"{integration.name} does not sign in with OAuth2")
    if not code_verifier and not integration.allow_plain_codes:
        # A stolen code alone must not connect an account: the app that started the
        # sign-in proves it with the PKCE verifier.
        raise ValidationError(
            "send the code_verifier of the PKCE challenge the code was issued for "
            "(an admin can allow codes without PKCE for this integration)",
            field="code_verifier",
        )
    params = validate_parameters(integration, parameters)
    client, secret = oauth_client(integration, vault)
    try:
        token = oauth.exchange_code(
            oauth.OAuthSettings.of(integration, params),
            client_id=client.client_id,
            client_secret=secret,
            redirect_uri=redirect_uri,
            code=code,
            code_verifier=code_verifier,
            http=http,
        )
    except oauth.OAuthProviderError as exc:
        raise ProviderError(f"the provider refused the code ({exc.error})") from None
    return store_oauth_account(
        session,
        integration=integration,
        owner="user",
        user_id=user_id,
        label=validate_label(label),
        parameters=params,
        client=client,
        token=token,
        vault=vault,
        http=http,
    )


def connect_client_credentials(
    session: Session,
    *,
    integration: Integration,
    vault: Vault,
    http: requests.Session | None = None,
) -> Account:
    """The facility's master account for a client-credentials integration."""
    client, secret = oauth_client(integration, vault)
    try:
        token = oauth.client_credentials_token(
            oauth.OAuthSettings.of(integration, {}),
            client_id=client.client_id,
            client_secret=secret,
            http=http,
        )
    except oauth.OAuthProviderError as exc:
        raise ProviderError(f"the provider refused the client ({exc.error})") from None
    return store_oauth_account(
        session,
        integration=integration,
        owner="master",
        user_id=None,
        label="",
        parameters={},
        client=client,
        token=token,
        vault=vault,
        http=http,
    )


def connect_with_credentials(
    session: Session,
    *,
    integration: Integration,
    owner: str,
    user_id: int | None,
    label: str,
    fields: Mapping[str, Any],
    parameters: Mapping[str, Any],
    vault: Vault,
    http: requests.Session | None = None,
) -> Account:
    """An account from an API key, key + secret, or username + password; when the
    integration declares a verification request, only credentials the provider accepts."""
    if integration.auth_mode not in catalog_entry.CREDENTIAL_MODES:
        raise ValidationError(f"{integration.name} does not take typed credentials")
    if not isinstance(fields, Mapping):
        raise ValidationError("fields must be a JSON object", field="fields")
    declared = set(integration.credential_fields or [])
    for name, value in fields.items():
        if name not in declared and not isinstance(value, str):
            # Named by its own field, as the forms and the declared fields are.
            raise ValidationError(f"{name} must be text", field=str(name))
    # Every wrong field at once: the master form showed the empty key, then, once filled,
    # the empty secret beside it.
    problems: list[ValidationError] = []
    values: dict[str, str] = {}
    for name in integration.credential_fields or []:
        with noting(problems):
            values[name] = _credential(name, fields.get(name))
    params: dict[str, str] = {}
    with noting(problems):
        params = validate_parameters(integration, parameters)
    if problems:
        raise InvalidFields.of(problems)
    label = validate_label(label) if owner == "user" else ""
    check_slot(session, integration, owner=owner, user_id=user_id, label=label)
    verdict = verify_credentials(
        integration, creds=values, parameters=params, vault=vault, http=http
    )
    if verdict is not None and not verdict.ok:
        if verdict.status is None or not verdict.about_credentials:
            raise ProviderError(verdict.message)
        # Shown under the first credential field: that is what the person should retype.
        fields_in_form = integration.credential_fields or []
        where = {"field": fields_in_form[0]} if fields_in_form else {}
        raise CredentialsRefused(verdict.message, **where)
    account = _account_for(session, integration, owner, user_id, label)
    reconnected = account.id is not None
    account.parameters = params
    account.credentials_enc = vault.encrypt_json(values)
    account.status = "active"
    account.version = (account.version or 0) + 1
    account.identity = identify(
        integration, creds=values, parameters=params, vault=vault, http=http
    )
    session.flush()
    _connected(session, account, integration, reconnected)
    return account


def _credential(name: str, value: Any) -> str:
    """A typed credential as the account keeps it, or why it cannot be one."""
    words = name.replace("_", " ")
    value = value or ""
    if not isinstance(value, str):
        raise ValidationError(f"the {words} must be text", field=name)
    if not value.strip():
        raise ValidationError(f"enter the {words}", field=name)
    if len(value) > catalog_entry.MAX_CREDENTIAL_LENGTH:
        raise ValidationError(
            f"the {words} may be at most {catalog_entry.MAX_CREDENTIAL_LENGTH:,} characters",
            field=name,
        )
    if any(c in value for c in "\r\n\x00"):
        raise ValidationError(f"the {words} has invalid characters", field=name)
    return value


def _connected(
    session: Session, account: Account, integration: Integration, reconnected: bool
) -> None:
    webhooks.announce_account(
        session,
        account,
        integration,
        "account.connected",
        reconnected=reconnected,
        identity=account.identity,
    )


def master_account(session: Session, integration_id: int) -> Account | None:
    """The facility's master account for an integration, if connected."""
    return session.scalar(
        select(Account).where(
            Account.integration_id == integration_id, Account.owner_kind == "master"
        )
    )


def accounts_for(session: Session, *, facility_id: int, user_id: int) -> list[Account]:
    """A user's own accounts in a facility."""
    return list(
        session.scalars(
            select(Account).where(Account.facility_id == facility_id, Account.user_id == user_id)
        )
    )
