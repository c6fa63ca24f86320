"""Test connection: ask the provider whether an integration's OAuth client, or typed
credentials (a key typed for the test, else the master account's), work; its answer in words."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from app.integrations import catalog_entry, oauth
from app.integrations.vault import Vault
from app.integrations.verification import verify_credentials
from app.models import Account, Integration
from app.services.account_rules import validate_parameters


def test_credentials(
    integration: Integration,
    vault: Vault,
    *,
    master: Account | None,
    fields: Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
    http: requests.Session | None = None,
) -> dict[str, Any]:
    """Send a key/password integration's verification request with credentials typed for
    the test (never stored) or else the master account's; the provider's answer in words."""
    if not integration.verify:
        return {
            "ok": None,
            "message": f"{integration.name} declares no verification request, so there is "
            "nothing to send; add one to test keys before they are stored",
        }
    if fields and any(str(value).strip() for value in fields.values()):
        creds = {name: str(fields.get(name) or "") for name in integration.credential_fields or []}
        params = validate_parameters(integration, parameters)
        used = "the credentials typed for the test"
    elif master is not None and master.credentials_enc:
        creds, params = vault.decrypt_json(master.credentials_enc), dict(master.parameters)
        used = "the master account"
    else:
        return {
            "ok": False,
            "message": "connect the master account, or type credentials to test with",
        }
    verdict = verify_credentials(
        integration, creds=creds, parameters=params, vault=vault, http=http
    )
    assert verdict is not None  # the integration declares a verification request
    return {"ok": verdict.ok, "status": verdict.status, "message": f"{verdict.message} ({used})"}


def test_connection(
    integration: Integration, vault: Vault, http: requests.Session | None = None
) -> dict[str, Any]:
    """Ask the provider about the OAuth client; its answer in words."""
    if integration.auth_mode not in catalog_entry.OAUTH_MODES:
        return {"ok": None, "message": f"{integration.name} does not sign in with OAuth"}
    client = integration.current_client
    if client is None:
        return {"ok": False, "message": "enter the client id and secret first"}
    secret = vault.decrypt(client.client_secret_enc) if client.client_secret_enc else None
    settings = oauth.OAuthSettings.of(integration, {})
    try:
        if integration.auth_mode == "oauth2_client_credentials":
            oauth.client_credentials_token(
                settings, client_id=client.client_id, client_secret=secret, http=http
            )
            return {"ok": True, "message": "the provider issued a token for this client"}
        oauth.exchange_code(
            settings,
            client_id=client.client_id,
            client_secret=secret,
            redirect_uri="https://scriptbox.invalid/oauth/callback",
            code="scriptbox-connection-test",
            code_verifier=None,
            http=http,
        )
    except oauth.OAuthProviderError as exc:
        if exc.error == oauth.ADDRESS_NOT_ALLOWED:
            # Only this: which private addresses answer, and how, is not the admin's to learn.
            return {"ok": False, "error": exc.error, "message": "the address is not allowed"}
        if exc.error == oauth.NOT_REACHED:
            # Nothing answered: the verb cannot be the cause, the URL or the network may be.
            return {
                "ok": False,
                "error": exc.error,
                "message": f"{exc.description}; check the token URL ({integration.token_url}) "
                "and that this server can reach the provider",
            }
        verb = integration.token_request_method
        # Only a complaint about the made-up code itself shows the client got through:
        # invalid_request may just as well be the provider refusing the request (its verb).
        if exc.error in ("invalid_grant", "invalid_code"):
            return {
                "ok": True,
                "error": exc.error,
                "message": f"client id and secret accepted (the provider answered "
                f"{exc.error} for the test code, as expected, to a {verb} token request)",
            }
        if exc.error in ("invalid_client", "unauthorized_client"):
            return {
                "ok": False,
                "error": exc.error,
                "message": f"the provider rejected the client id or secret ({exc.error}); "
                "check both at the provider and save them again",
            }
        answer = f"{exc.error}: {exc.description}".strip(": ")
        return {
            "ok": False,
            "error": exc.error,
            "message": f"the provider refused the {verb} token request ({answer}); "
            "check the token request verb and URL",
        }
    return {"ok": True, "message": "the provider accepted the test request"}
