"""Rotating an integration's OAuth client secret, through the REST API against the real dev
provider on loopback: connected accounts keep refreshing with the new secret, and a client
the provider refuses shows on the admin's pages in words."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from app import db
from app.devprovider import (
    ClientSpec,
    ProviderConfig,
    answer_consent,
    create_provider_app,
    provider_of,
    serve_in_thread,
)
from app.models import Account, Role
from app.models._types import utcnow
from app.testing import LiveServer
from tests.conftest import demo_oauth_fields, signed_in_lab

CSRF = "test-csrf-token"
HEADERS = {"X-CSRF-Token": CSRF}
CALLS_ME = 'result = integrations.get("demo", "/me", account="user").json()'


@pytest.fixture
def world(live: LiveServer) -> Iterator[dict[str, Any]]:
    """A provider with client `rotating`, an OAuth integration using it, admin and member."""
    spec = ClientSpec(
        "rotating",
        "secret-one",
        [f"{live.url}/oauth/callback"],
        token_endpoint_auth_method="client_secret_basic",
    )
    provider_app = create_provider_app(ProviderConfig(access_token_lifetime=3600, clients=[spec]))
    with serve_in_thread(provider_app) as provider:
        with live.app.app_context():
            by_role = signed_in_lab(live.app, roles=(Role.admin, Role.scripter), csrf=CSRF)
            db.session.remove()
        # The tests' `member` connects an account and runs source, which takes a scripter.
        clients = {"admin": by_role["admin"], "member": by_role["scripter"]}
        created = clients["admin"].post(
            "/api/f/lab/integrations",
            json=demo_oauth_fields(
                provider.url, client_id="rotating", client_secret="secret-one", scopes=["read"]
            ),
            headers=HEADERS,
        )
        assert created.status_code == 201, created.get_json()
        yield {"live": live, "provider": provider_of(provider_app), "spec": spec, **clients}


def _connect(member: FlaskClient) -> None:
    started = member.post("/api/f/lab/integrations/demo/accounts", json={}, headers=HEADERS)
    back = urlsplit(answer_consent(started.get_json()["authorization_url"]))
    assert member.get(f"{back.path}?{back.query}").status_code == 200


def _expire_tokens(live: LiveServer) -> None:
    with live.app.app_context():
        for account in db.session.scalars(select(Account)):
            account.token_issued_at = utcnow() - timedelta(hours=2)
            account.token_expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
        db.session.remove()


def _run(member: FlaskClient) -> dict[str, Any]:
    answer = member.post("/api/f/lab/runs", json={"source": CALLS_ME, "wait": 60}, headers=HEADERS)
    run: dict[str, Any] = answer.get_json()
    return run


def _rotate_at_provider(world: dict[str, Any], secret: str) -> None:
    spec = world["spec"]
    world["provider"].add_client(
        ClientSpec(
            spec.client_id,
            secret,
            spec.redirect_uris,
            token_endpoint_auth_method=spec.token_endpoint_auth_method,
        )
    )


def test_a_new_secret_for_the_same_client_reaches_connected_accounts(
    world: dict[str, Any],
) -> None:
    admin, member = world["admin"], world["member"]
    _connect(member)
    _rotate_at_provider(world, "secret-two")
    saved = admin.patch(
        "/api/f/lab/integrations/demo",
        json={"client_id": "rotating", "client_secret": "secret-two"},
        headers=HEADERS,
    )
    assert saved.status_code == 200, saved.get_json()
    _expire_tokens(world["live"])
    run = _run(member)
    assert run["status"] == "succeeded", run.get("error")
    assert run["result"]["username"] == "alice"
    assert world["provider"].stats["refreshes"] == 1


def test_a_refused_client_shows_on_the_admin_pages_in_words(world: dict[str, Any]) -> None:
    admin, member = world["admin"], world["member"]
    _connect(member)
    assert admin.get("/api/f/lab/integrations/demo").get_json()["client_problem"] is None
    _rotate_at_provider(world, "changed-at-the-provider")  # nobody told Scriptbox
    _expire_tokens(world["live"])
    run = _run(member)
    assert run["status"] == "failed"
    assert "invalid_client" in run["error"]["message"]
    problem = admin.get("/api/f/lab/integrations/demo").get_json()["client_problem"]
    assert "refused the OAuth client rotating (invalid_client)" in problem
    assert "1 connected account(s)" in problem
    for page in ("/f/lab/manage", "/f/lab/manage/integrations/demo"):
        html = admin.get(page).get_data(as_text=True)
        assert "refused the OAuth client rotating (invalid_client)" in html, page
    admin.patch(
        "/api/f/lab/integrations/demo",
        json={"client_secret": "changed-at-the-provider"},
        headers=HEADERS,
    )
    assert admin.get("/api/f/lab/integrations/demo").get_json()["client_problem"] is None
    assert _run(member)["status"] == "succeeded"
