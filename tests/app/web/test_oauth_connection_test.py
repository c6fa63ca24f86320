"""Test connection of an OAuth integration, through the REST API against the real dev
provider on loopback: it uses the configured token verb and reports the provider's answer."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.devprovider import ClientSpec, ProviderConfig, create_provider_app, serve_in_thread
from app.models import Role
from tests.conftest import demo_oauth_fields, signed_in_lab

CSRF = "test-csrf-token"
HEADERS = {"X-CSRF-Token": CSRF}


@pytest.fixture
def post_only() -> Iterator[str]:
    """A provider whose token endpoint refuses GET, as many real ones do."""
    spec = ClientSpec("the-client", "the-secret", ["http://127.0.0.1:5000/oauth/callback"])
    provider_app = create_provider_app(ProviderConfig(clients=[spec], token_methods=("POST",)))
    with serve_in_thread(provider_app) as provider:
        yield provider.url


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    """A client signed in as an admin of facility `lab`."""
    return signed_in_lab(app, roles=[Role.admin], csrf=CSRF)["admin"]


@pytest.mark.parametrize(
    ("verb", "ok"), [("POST", True), ("GET", False)], ids=["post-accepted", "get-refused"]
)
def test_test_connection_uses_the_configured_verb(
    admin: FlaskClient, post_only: str, verb: str, ok: bool
) -> None:
    created = admin.post(
        "/api/f/lab/integrations",
        json=demo_oauth_fields(
            post_only,
            client_id="the-client",
            client_secret="the-secret",
            token_request_method=verb,
        ),
        headers=HEADERS,
    )
    assert created.status_code == 201, created.get_json()
    answer = admin.post("/api/f/lab/integrations/demo/test", headers=HEADERS).get_json()
    assert answer["ok"] is ok, answer
    assert verb in answer["message"]
    if not ok:
        assert "does not accept GET" in answer["message"]


def test_a_token_endpoint_that_does_not_answer_is_not_called_a_refusal(
    admin: FlaskClient,
) -> None:
    """Nothing listens at the token URL (a typo, a firewall): the answer said "the provider
    refused the POST token request ...; check the token request verb", which nothing refused."""
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    created = admin.post(
        "/api/f/lab/integrations",
        json=demo_oauth_fields(closed, client_id="the-client", client_secret="the-secret"),
        headers=HEADERS,
    )
    assert created.status_code == 201, created.get_json()
    answer = admin.post("/api/f/lab/integrations/demo/test", headers=HEADERS).get_json()
    assert answer["ok"] is False
    assert answer["message"] == (
        "the token endpoint could not be reached (ConnectionError); check the token URL "
        f"({closed}/token) and that this server can reach the provider"
    )
