"""A master account that must be signed in again, through the REST API: scripts asking for
it get reason master_needs_reauth in words, default calls say why instead of quietly asking
members, and the API shows the state."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update

from app import db
from app.devprovider import ProviderConfig, create_provider_app, serve_in_thread
from app.models import Account, Role
from app.testing import LiveServer
from tests.conftest import signed_in_lab

CSRF = "test-csrf-token"
HEADERS = {"X-CSRF-Token": CSRF}
ASKS = """
try:
    integrations.get("keyed", "/me"{account})
    result = {{"called": True}}
except integrations.NoIntegrationGrant as refused:
    result = {{"reason": refused.reason, "message": str(refused)}}
"""


@pytest.fixture
def world(live: LiveServer) -> Iterator[dict[str, FlaskClient]]:
    """A key integration whose master account must be signed in again; admin and scripter."""
    provider_app = create_provider_app(ProviderConfig(api_keys={"master-key-5": None}))
    with serve_in_thread(provider_app) as provider:
        with live.app.app_context():
            clients = signed_in_lab(live.app, roles=(Role.admin, Role.scripter), csrf=CSRF)
            db.session.remove()
        admin = clients["admin"]
        created = admin.post(
            "/api/f/lab/integrations",
            json={
                "key": "keyed",
                "name": "GitHub",
                "auth_mode": "api_key",
                "base_url": f"{provider.url}/keyapi",
                "placements": [
                    {"location": "header", "name": "X-API-Key", "template": "{api_key}"}
                ],
            },
            headers=HEADERS,
        )
        assert created.status_code == 201, created.get_json()
        master = admin.post(
            "/api/f/lab/integrations/keyed/master",
            json={"fields": {"api_key": "master-key-5"}},
            headers=HEADERS,
        )
        assert master.status_code == 201, master.get_json()
        with live.app.app_context():
            db.session.execute(update(Account).values(status="needs_reauth"))
            db.session.commit()
            db.session.remove()
        yield clients


def _run(client: FlaskClient, source: str) -> dict[str, Any]:
    answer = client.post("/api/f/lab/runs", json={"source": source, "wait": 60}, headers=HEADERS)
    run: dict[str, Any] = answer.get_json()
    assert run["status"] == "succeeded", run
    result: dict[str, Any] = run["result"]
    return result


@pytest.mark.parametrize("account", [', account="master"', ""], ids=["master", "default"])
def test_calls_say_the_master_must_be_signed_in_again(
    world: dict[str, FlaskClient], account: str
) -> None:
    result = _run(world["scripter"], ASKS.format(account=account))
    assert result["reason"] == "master_needs_reauth"
    assert (
        "the facility's GitHub account must be signed in again by an admin" in (result["message"])
    )


def test_the_api_and_the_pages_show_the_state(world: dict[str, FlaskClient]) -> None:
    admin = world["admin"]
    listed = admin.get("/api/f/lab/integrations").get_json()[0]
    assert (listed["master_connected"], listed["master_status"]) == (False, "needs_reauth")
    management = admin.get("/f/lab/manage").get_data(as_text=True)
    assert "must sign in again" in management and "Reconnect" in management
    assert "badge ok" not in management
    page = admin.get("/f/lab/manage/integrations/keyed").get_data(as_text=True)
    assert "must sign in again" in page and ">Reconnect</button>" in page
    reconnected = admin.post(
        "/api/f/lab/integrations/keyed/master",
        json={"fields": {"api_key": "master-key-5"}},
        headers=HEADERS,
    )
    assert reconnected.status_code == 201
    assert admin.get("/api/f/lab/integrations").get_json()[0]["master_status"] == "active"
    assert _run(world["scripter"], ASKS.format(account=', account="master"')) == {"called": True}


def test_the_editor_readiness_says_the_master_must_sign_in_again(
    world: dict[str, FlaskClient],
) -> None:
    source = 'integrations.get("keyed", "/me", account="master")\nintegrations.get("keyed", "/me")'
    answer = world["scripter"].post(
        "/api/f/lab/readiness", json={"source": source}, headers=HEADERS
    )
    assert answer.status_code == 200, answer.get_json()
    items = answer.get_json()
    assert [(item["account"], item["state"]) for item in items] == [
        ("master", "master_needs_reauth"),
        (None, "master_needs_reauth"),
    ]
    assert all("signed in again by an admin" in item["message"] for item in items)


def test_a_run_that_fails_for_the_master_account_says_an_admin_must_act(
    world: dict[str, FlaskClient],
) -> None:
    # Not the member's own sign-in: the words and the page must not send them to connect
    # their own account (what every no_integration_grant said before its reason was kept).
    scripter = world["scripter"]
    answer = scripter.post(
        "/api/f/lab/runs",
        json={"source": 'integrations.get("keyed", "/me", account="master")', "wait": 60},
        headers=HEADERS,
    )
    run = answer.get_json()
    assert run["status"] == "failed", run
    assert (run["error"]["code"], run["error"]["reason"]) == (
        "no_integration_grant", "master_needs_reauth")
    words = scripter.get(f"/api/f/lab/runs/{run['id']}/explain").get_json()["words"]
    assert words.startswith("The facility's GitHub account must be signed in again. Ask an admin")
    assert "Settings" not in words
