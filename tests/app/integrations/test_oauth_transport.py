"""Every OAuth request of the server goes through the guarded transport (DESIGN §6): code
exchange, refresh, revocation, client credentials and Test connection dial only allowed
addresses and never a proxy from the environment. Canaries fail the test if the client
secret, the refresh token or the PKCE verifier reach them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from app import db, extensions
from app.errors import OAuthCallbackError, ProviderError, RevocationFailed
from app.integrations.tokens import RefreshFailed, TokenManager
from app.models import Account, Facility, Integration, OAuthState
from app.models._types import utcnow
from app.services import (
    connection_checks,
    connections,
    disconnection,
    integrations_admin,
    oauth_sign_in,
    oauth_states,
)
from app.testing import signed_in_session
from tests.app.integrations.conftest import Canary, RealProvider, oauth_integration
from tests.app.integrations.test_outbound_guards import lab

CLIENT_SECRET = "canary-client-secret-4c7d"
REFRESH_TOKEN = "canary-refresh-token-9b1e"
REDIRECT = "http://127.0.0.1:5000/oauth/callback"


def oauth_at(session: Session, facility: Facility, url: str, **fields: Any) -> Integration:
    """An OAuth2 integration whose every endpoint is at `url` (a canary)."""
    values: dict[str, Any] = {
        "key": "svc",
        "name": "Svc",
        "auth_mode": "oauth2",
        "base_url": f"{url}/api",
        "authorization_url": f"{url}/authorize",
        "token_url": f"{url}/token",
        "revoke_url": f"{url}/revoke",
        "token_auth_method": "client_secret_post",
        "client_id": "canary-client",
        "client_secret": CLIENT_SECRET,
        **fields,
    }
    return integrations_admin.create_custom(session, facility=facility, fields=values)


def account_with_refresh_token(session: Session, integration: Integration) -> Account:
    account = Account(
        facility_id=integration.facility_id,
        integration_id=integration.id,
        owner_kind="master",
        label="",
        credentials_enc=extensions.vault().encrypt_json(
            {"access_token": "old-access", "refresh_token": REFRESH_TOKEN}
        ),
        oauth_client_id=integration.current_client_id,
        token_issued_at=utcnow() - timedelta(hours=2),
        token_expires_at=utcnow() - timedelta(seconds=5),
        version=1,
    )
    session.add(account)
    session.commit()
    return account


def code_exchange(session: Session, integration: Integration, user_id: int) -> None:
    oauth_sign_in.start_authorization(
        session,
        integration=integration,
        user_id=user_id,
        facility_id=integration.facility_id,
        purpose="connect",
        session_binding="b",
        redirect_uri=REDIRECT,
        vault=extensions.vault(),
    )
    row = session.query(OAuthState).one()
    row.state_hash = oauth_states.state_hash("known-state")
    session.commit()
    with pytest.raises(OAuthCallbackError):
        oauth_sign_in.complete_authorization(
            session,
            state="known-state",
            code="a-code",
            error=None,
            session_binding="b",
            redirect_uri=REDIRECT,
            vault=extensions.vault(),
            http=extensions.outbound(),
        )


def refresh(app: Flask, session: Session, integration: Integration) -> None:
    account = account_with_refresh_token(session, integration)
    manager = TokenManager(
        session_factory=db.session_factory(app),
        vault=extensions.vault(),
        http=extensions.outbound(),
    )
    with pytest.raises(RefreshFailed):
        manager.credentials(account.id)


def revocation(session: Session, integration: Integration, *, reached: bool = False) -> None:
    account = account_with_refresh_token(session, integration)
    if reached:
        disconnection.disconnect(session, account, extensions.vault(), extensions.outbound())
        return
    with pytest.raises(RevocationFailed):  # the account is kept; nothing was sent
        disconnection.disconnect(session, account, extensions.vault(), extensions.outbound())


def client_credentials(session: Session, facility: Facility, url: str) -> None:
    integration = oauth_at(
        session,
        facility,
        url,
        key="machine",
        auth_mode="oauth2_client_credentials",
        authorization_url=None,
    )
    with pytest.raises(ProviderError):
        connections.connect_client_credentials(
            session, integration=integration, vault=extensions.vault(), http=extensions.outbound()
        )


def connection_test(integration: Integration) -> None:
    answer = connection_checks.test_connection(
        integration, extensions.vault(), extensions.outbound()
    )
    assert answer == {
        "ok": False,
        "error": "address_not_allowed",
        "message": "the address is not allowed",
    }


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])  # an address, and a name
@pytest.mark.parametrize(
    "operation", ["code_exchange", "refresh", "revocation", "client_credentials", "test"]
)
def test_oauth_requests_to_private_addresses_and_proxies_carry_nothing(
    make: Any,
    canary: Canary,
    second_canary: Canary,
    monkeypatch: pytest.MonkeyPatch,
    operation: str,
    host: str,
) -> None:
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(variable, second_canary.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    app = make(PRIVATE_NETWORK_ALLOW="")
    session = db.session()
    facility, user = lab(session)
    url = f"http://{host}:{canary.port}"
    integration = oauth_at(session, facility, url)
    session.commit()
    if operation == "code_exchange":
        code_exchange(session, integration, user.id)
    elif operation == "refresh":
        refresh(app, session, integration)
    elif operation == "revocation":
        revocation(session, integration)
    elif operation == "client_credentials":
        client_credentials(session, facility, url)
    else:
        connection_test(integration)
    assert canary.arrivals == [] and second_canary.arrivals == []


def test_connection_is_not_a_port_scanner(make: Any, canary: Canary) -> None:
    make(PRIVATE_NETWORK_ALLOW="")
    session = db.session()
    facility, _user = lab(session)
    listening = oauth_at(session, facility, canary.url)
    closed = oauth_at(session, facility, "http://127.0.0.1:9", key="closed")
    answers = [
        connection_checks.test_connection(i, extensions.vault(), extensions.outbound())
        for i in (listening, closed)
    ]
    assert answers[0] == answers[1]
    assert answers[0]["message"] == "the address is not allowed"


def test_proxies_from_the_environment_are_ignored_when_the_address_is_allowed(
    make: Any, canary: Canary, second_canary: Canary, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(variable, second_canary.url)
    make(PRIVATE_NETWORK_ALLOW=f"127.0.0.1/32:{canary.port}")
    session = db.session()
    facility, _user = lab(session)
    integration = oauth_at(session, facility, canary.url)
    session.commit()
    revocation(session, integration, reached=True)
    assert [a.path for a in canary.arrivals] == ["/revoke"]  # sent directly, not via the proxy
    assert second_canary.arrivals == []


def test_without_an_injected_transport_the_default_is_the_guarded_one(
    make: Any, canary: Canary
) -> None:
    app = make(PRIVATE_NETWORK_ALLOW=f"127.0.0.1/32:{canary.port}")  # not for the defaults
    session = db.session()
    facility, _user = lab(session)
    integration = oauth_at(session, facility, canary.url)
    account = account_with_refresh_token(session, integration)
    manager = TokenManager(session_factory=db.session_factory(app), vault=extensions.vault())
    with pytest.raises(RefreshFailed):
        manager.credentials(account.id)
    with pytest.raises(RevocationFailed):
        disconnection.disconnect(session, account, extensions.vault())
    assert canary.arrivals == []


@pytest.mark.parametrize(("allow", "ok"), [("127.0.0.1/32", True), ("", False)])
def test_the_admin_views_use_the_operators_transport(
    make: Any, provider: RealProvider, allow: str, ok: bool
) -> None:
    app = make(PRIVATE_NETWORK_ALLOW=allow)
    session = db.session()
    facility, user = lab(session)
    oauth_integration(session, facility, provider)
    session.commit()
    client = app.test_client()
    with client.session_transaction() as browser:
        browser.update({**signed_in_session(app, user.id), "csrf": "t"})
    answer = client.post("/api/f/lab/integrations/demo/test", headers={"X-CSRF-Token": "t"})
    assert answer.status_code == 200
    if ok:
        assert answer.get_json()["ok"] is True
    else:
        assert answer.get_json()["message"] == "the address is not allowed"
    plain = client.post(
        "/api/f/lab/integrations/demo/accounts/code",
        json={"code": "a-code", "redirect_uri": REDIRECT},
        headers={"X-CSRF-Token": "t"},
    )
    assert plain.status_code == 400
    assert plain.get_json()["error"]["field"] == "code_verifier"
    assert provider.stats["code_exchanges"] == 0
