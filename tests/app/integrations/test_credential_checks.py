"""Typed credentials are checked before they are stored (the integration's verification
request, sent to the real dev provider on loopback), and Test connection works for key and
Basic integrations, through the REST API."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import db
from app.models import Account, Role
from tests.app.integrations.conftest import (
    API_KEY,
    API_SECRET,
    BASIC_PASSWORD,
    BASIC_USER,
    PLAIN_KEY,
    RealProvider,
)
from tests.conftest import keyed_api_fields, signed_in_lab

CSRF = "test-csrf-token"
HEADERS = {"X-CSRF-Token": CSRF}
VERIFY = {"method": "GET", "path": "/me", "expected_status": 200}


@pytest.fixture
def clients(app: Flask) -> dict[str, FlaskClient]:
    """Clients signed in as an admin and as a member of facility `lab`."""
    return signed_in_lab(app, roles=(Role.admin, Role.member), csrf=CSRF)


def _integration(client: FlaskClient, provider: RealProvider, **fields: Any) -> None:
    body = keyed_api_fields(provider.url, **{"verify": VERIFY, **fields})
    answer = client.post("/api/f/lab/integrations", json=body, headers=HEADERS)
    assert answer.status_code == 201, answer.get_json()


def _accounts() -> list[Account]:
    db.session.expire_all()
    return list(db.session.scalars(select(Account)))


def test_a_wrong_key_is_refused_with_the_providers_answer(
    clients: dict[str, FlaskClient], provider: RealProvider
) -> None:
    _integration(clients["admin"], provider)
    wrong = "wrong-key-4471"
    answer = clients["member"].post(
        "/api/f/lab/integrations/keyed/accounts",
        json={"fields": {"api_key": wrong}},
        headers=HEADERS,
    )
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["code"] == "credentials_refused"
    assert error["field"] == "api_key"
    # The provider's own words, not its JSON body.
    assert error["message"] == "Keyed API refused the credentials: it answered HTTP 401: " \
        "Unknown API key."
    assert wrong not in answer.get_data(as_text=True)
    assert _accounts() == []


def test_a_right_key_is_checked_and_stored(
    clients: dict[str, FlaskClient], provider: RealProvider
) -> None:
    _integration(clients["admin"], provider)
    answer = clients["member"].post(
        "/api/f/lab/integrations/keyed/accounts",
        json={"fields": {"api_key": PLAIN_KEY}},
        headers=HEADERS,
    )
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["status"] == "active"
    assert provider.stats.get("api_calls") == 1


def test_a_wrong_master_password_is_refused(
    clients: dict[str, FlaskClient], provider: RealProvider
) -> None:
    _integration(
        clients["admin"],
        provider,
        auth_mode="basic",
        credential_fields=["username", "password"],
        placements=[
            {"location": "basic", "template": "{username}", "password_template": "{password}"}
        ],
    )
    wrong = {"username": BASIC_USER, "password": "not-the-password"}
    answer = clients["admin"].post(
        "/api/f/lab/integrations/keyed/master", json={"fields": wrong}, headers=HEADERS
    )
    assert answer.status_code == 400
    assert "Wrong username or password" in answer.get_json()["error"]["message"]
    assert _accounts() == []
    right = {"username": BASIC_USER, "password": BASIC_PASSWORD}
    answer = clients["admin"].post(
        "/api/f/lab/integrations/keyed/master", json={"fields": right}, headers=HEADERS
    )
    assert answer.status_code == 201, answer.get_json()


def test_every_empty_or_wrong_field_is_named_at_once(
    clients: dict[str, FlaskClient], provider: RealProvider
) -> None:
    """An empty username was the only problem named; with it filled, the empty password
    came next, then the parameter: one submit per field. Nothing is sent to the provider
    or stored while any is wrong."""
    _integration(
        clients["admin"],
        provider,
        auth_mode="basic",
        base_url=f"{provider.url}/keyapi/{{region}}",
        credential_fields=["username", "password"],
        parameters=[{"name": "region", "label": "Region", "pattern": "^[a-z]+$"}],
        placements=[
            {"location": "basic", "template": "{username}", "password_template": "{password}"}
        ],
    )
    answer = clients["admin"].post(
        "/api/f/lab/integrations/keyed/master",
        json={"fields": {"username": " ", "password": "a\nb"}, "parameters": {"region": "E U"}},
        headers=HEADERS,
    )
    assert answer.status_code == 400, answer.get_json()
    problems = {p["field"]: p["message"] for p in answer.get_json()["error"]["errors"]}
    assert problems == {
        "username": "enter the username",
        "password": "the password has invalid characters",
        "param_region": "Region has characters that are not allowed",
    }
    answer = clients["admin"].post(
        "/api/f/lab/integrations/keyed/master", json={"fields": {}}, headers=HEADERS
    )
    problems = {p["field"]: p["message"] for p in answer.get_json()["error"]["errors"]}
    assert problems == {"username": "enter the username", "password": "enter the password",
                        "param_region": "enter Region"}
    assert _accounts() == [] and provider.stats.get("api_calls") == 0


def test_an_unreachable_provider_is_said_in_words(
    clients: dict[str, FlaskClient], provider: RealProvider
) -> None:
    _integration(clients["admin"], provider, base_url="http://127.0.0.1:9/keyapi")
    answer = clients["member"].post(
        "/api/f/lab/integrations/keyed/accounts",
        json={"fields": {"api_key": PLAIN_KEY}},
        headers=HEADERS,
    )
    assert answer.status_code == 502
    assert "could not be reached" in answer.get_json()["error"]["message"]
    assert _accounts() == []


def test_a_check_sent_to_no_such_address_blames_the_address_not_the_key(
    clients: dict[str, FlaskClient], provider: RealProvider
) -> None:
    # The base URL misses the provider's /keyapi: its 404 page says nothing of the key.
    _integration(clients["admin"], provider, base_url=provider.url)
    answer = clients["member"].post(
        "/api/f/lab/integrations/keyed/accounts",
        json={"fields": {"api_key": PLAIN_KEY}},
        headers=HEADERS,
    )
    assert answer.status_code == 502
    error = answer.get_json()["error"]
    assert error["code"] == "provider_error"
    assert "field" not in error  # nothing to retype in the key's field
    assert error["message"] == (
        f"Keyed API answered HTTP 404 (not found) to the check GET {provider.url}/me: its "
        "address may be wrong rather than the credentials; an admin can correct the "
        "integration's base URL or verification request in its Settings"
    )
    assert _accounts() == []
    tested = clients["admin"].post(
        "/api/f/lab/integrations/keyed/test",
        json={"fields": {"api_key": PLAIN_KEY}},
        headers=HEADERS,
    ).get_json()
    assert tested["ok"] is False and tested["status"] == 404
    assert "<" not in tested["message"]  # not the server's HTML Not Found page


def test_test_connection_uses_typed_credentials_or_the_master_account(
    clients: dict[str, FlaskClient], provider: RealProvider
) -> None:
    _integration(
        clients["admin"],
        provider,
        auth_mode="api_key_secret",
        credential_fields=["api_key", "api_secret"],
        placements=[
            {"location": "header", "name": "X-API-Key", "template": "{api_key}"},
            {"location": "header", "name": "X-API-Secret", "template": "{api_secret}"},
        ],
    )
    admin = clients["admin"]
    test = "/api/f/lab/integrations/keyed/test"
    nothing = admin.post(test, json={}, headers=HEADERS).get_json()
    assert nothing["ok"] is False and "connect the master account" in nothing["message"]
    typed = {"fields": {"api_key": API_KEY, "api_secret": "wrong-secret"}}
    refused = admin.post(test, json=typed, headers=HEADERS).get_json()
    assert refused["ok"] is False and refused["status"] == 401
    assert "Missing or wrong X-API-Secret" in refused["message"]
    connected = admin.post(
        "/api/f/lab/integrations/keyed/master",
        json={"fields": {"api_key": API_KEY, "api_secret": API_SECRET}},
        headers=HEADERS,
    )
    assert connected.status_code == 201, connected.get_json()
    accepted = admin.post(test, json={}, headers=HEADERS).get_json()
    assert accepted["ok"] is True and "master account" in accepted["message"]


def test_every_key_catalog_entry_declares_a_verification_request(
    clients: dict[str, FlaskClient],
) -> None:
    from app.integrations.catalog import load_catalog
    from app.integrations.catalog_entry import CREDENTIAL_MODES

    keyed = [e for e in load_catalog().values() if e.auth_mode in CREDENTIAL_MODES]
    assert keyed
    assert [e.key for e in keyed if e.verify is None] == []
