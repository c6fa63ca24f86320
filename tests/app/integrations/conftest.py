"""A real OAuth2 provider and API on loopback (app.devprovider, built on Authlib)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.orm import Session

from app.devprovider import (
    ClientSpec,
    Provider,
    ProviderConfig,
    answer_consent,
    create_provider_app,
    provider_of,
    serve_in_thread,
)
from app.models import Facility, Integration
from app.services import integrations_admin

REDIRECT = "http://127.0.0.1:5000/oauth/callback"
SECRETS = {
    "basic-client": "basic-client-secret-4f9a",
    "post-client": "post-client-secret-8c1d",
    "second-client": "second-client-secret-2b7e",
    "machine": "machine-secret-0a5f",
}
API_KEY, API_SECRET = "key-7d3e1", "secret-9f2c4"
BASIC_USER, BASIC_PASSWORD = "robot", "robot-password-5e8b"
FRESHDESK_KEY = "fd-key-3a9"
PLAIN_KEY = "plain-key-6b2"


@dataclass
class RealProvider:
    """The running provider: its URL and state."""

    url: str
    state: Provider

    @property
    def stats(self) -> Any:
        return self.state.stats


@pytest.fixture(scope="module")
def provider() -> Iterator[RealProvider]:
    """One provider per test module (its state is reset before each test)."""
    clients = [
        ClientSpec(
            "basic-client",
            SECRETS["basic-client"],
            [REDIRECT],
            token_endpoint_auth_method="client_secret_basic",
        ),
        ClientSpec(
            "post-client",
            SECRETS["post-client"],
            [REDIRECT],
            token_endpoint_auth_method="client_secret_post",
        ),
        ClientSpec(
            "second-client",
            SECRETS["second-client"],
            [REDIRECT],
            token_endpoint_auth_method="client_secret_basic",
        ),
        ClientSpec(
            "machine",
            SECRETS["machine"],
            [],
            grant_types=["client_credentials"],
            token_endpoint_auth_method="client_secret_basic",
        ),
    ]
    app = create_provider_app(
        ProviderConfig(
            access_token_lifetime=3600,
            clients=clients,
            api_keys={
                API_KEY: API_SECRET,
                FRESHDESK_KEY: None,
                PLAIN_KEY: None,
                "own-key": None,
                "work-key": None,
                "master-key": None,
            },
            basic_users={BASIC_USER: BASIC_PASSWORD, FRESHDESK_KEY: "X"},
        )
    )
    with serve_in_thread(app) as server:
        yield RealProvider(server.url, provider_of(app))


@pytest.fixture(autouse=True)
def _fresh_provider_stats(request: pytest.FixtureRequest) -> None:
    if "provider" in request.fixturenames:
        request.getfixturevalue("provider").stats.reset()


def oauth_integration(
    session: Session,
    facility: Facility,
    provider: RealProvider,
    *,
    key: str = "demo",
    client: str = "basic-client",
    **fields: Any,
) -> Integration:
    """An OAuth2 integration on the real provider."""
    values: dict[str, Any] = {
        "key": key,
        "name": "Demo OAuth",
        "auth_mode": "oauth2",
        "base_url": f"{provider.url}/api",
        "authorization_url": f"{provider.url}/authorize",
        "token_url": f"{provider.url}/token",
        "revoke_url": f"{provider.url}/revoke",
        "token_auth_method": "client_secret_basic"
        if client != "post-client"
        else "client_secret_post",
        "scopes": ["read", "write"],
        "allow_private_network": True,
        "client_id": client,
        "client_secret": SECRETS[client],
    }
    values.update(fields)
    return integrations_admin.create_custom(session, facility=facility, fields=values)


def code_and_state(redirect_url: str) -> tuple[str | None, str, str | None]:
    """(code, state, error) from the provider's redirect back to Scriptbox."""
    query = parse_qs(urlsplit(redirect_url).query)
    return (
        query.get("code", [None])[0],
        query.get("state", [""])[0],
        query.get("error", [None])[0],
    )


__all__ = ["answer_consent"]


def authorize(
    session: Session,
    integration: Integration,
    *,
    user_id: int,
    purpose: str = "connect",
    binding: str,
    label: str = "",
    approve: bool = True,
) -> tuple[str | None, str, str | None]:
    """Start an authorization and answer the provider's consent page: (code, state, error)."""
    from app import extensions
    from app.services import connections

    url = connections.start_authorization(
        session,
        integration=integration,
        user_id=user_id,
        facility_id=integration.facility_id,
        purpose=purpose,
        session_binding=binding,
        redirect_uri=REDIRECT,
        vault=extensions.vault(),
        label=label,
    )
    session.commit()
    return code_and_state(answer_consent(url, approve=approve))
