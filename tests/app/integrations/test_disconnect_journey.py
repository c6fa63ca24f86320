"""Disconnecting an OAuth account whose revocation fails, through the REST API against the
real dev provider on loopback: the account is kept and the answer says why; a retry or
"remove anyway" finishes it."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from app import db
from app.devprovider import answer_consent
from app.models import Account, Role
from tests.app.integrations.conftest import SECRETS, RealProvider
from tests.conftest import demo_oauth_fields, signed_in_lab

CSRF = "test-csrf-token"
HEADERS = {"X-CSRF-Token": CSRF}


@pytest.fixture
def clients(app: Flask) -> dict[str, FlaskClient]:
    """Clients signed in as an admin and as a member of facility `lab`."""
    return signed_in_lab(app, roles=(Role.admin, Role.member), csrf=CSRF)


def _setup(clients: dict[str, FlaskClient], provider: RealProvider, **fields: Any) -> int:
    created = clients["admin"].post(
        "/api/f/lab/integrations",
        json=demo_oauth_fields(
            provider.url,
            client_id="basic-client",
            client_secret=SECRETS["basic-client"],
            **{"revoke_url": f"{provider.url}/revoke", **fields},
        ),
        headers=HEADERS,
    )
    assert created.status_code == 201, created.get_json()
    member = clients["member"]
    started = member.post("/api/f/lab/integrations/demo/accounts", json={}, headers=HEADERS)
    back = urlsplit(answer_consent(started.get_json()["authorization_url"]))
    assert member.get(f"{back.path}?{back.query}").status_code == 200
    account_id: int = member.get("/api/f/lab/accounts").get_json()[0]["id"]
    return account_id


def _count() -> int:
    db.session.expire_all()
    return len(db.session.scalars(select(Account)).all())


def test_a_refused_revocation_keeps_the_account_until_a_retry_works(
    clients: dict[str, FlaskClient], provider: RealProvider
) -> None:
    account_id = _setup(clients, provider)
    admin, member = clients["admin"], clients["member"]
    # The saved secret no longer matches the provider's: it refuses the revocation.
    admin.patch("/api/f/lab/integrations/demo", json={"client_secret": "stale"}, headers=HEADERS)
    url = f"/api/f/lab/accounts/{account_id}"
    refused = member.delete(url, headers=HEADERS)
    assert refused.status_code == 502
    error = refused.get_json()["error"]
    assert error["code"] == "revocation_failed" and error["reachable"] is True
    assert "refused to revoke the token (invalid_client" in error["message"]
    assert "remove it anyway" in error["message"]
    assert _count() == 1 and provider.stats["revocations"] == 0
    admin.patch(
        "/api/f/lab/integrations/demo",
        json={"client_secret": SECRETS["basic-client"]},
        headers=HEADERS,
    )
    assert member.delete(url, headers=HEADERS).status_code == 204  # the retry
    assert _count() == 0 and provider.stats["revocations"] == 1


def test_an_unreachable_provider_can_be_removed_anyway(
    clients: dict[str, FlaskClient], provider: RealProvider
) -> None:
    account_id = _setup(clients, provider, revoke_url="http://127.0.0.1:9/revoke")
    member = clients["member"]
    url = f"/api/f/lab/accounts/{account_id}"
    refused = member.delete(url, headers=HEADERS)
    assert refused.status_code == 502
    error = refused.get_json()["error"]
    assert error["reachable"] is False and "could not be reached" in error["message"]
    assert _count() == 1
    # A value it does not take is a 400 naming it: "yes" was read as no (a 502 again).
    unread = member.delete(f"{url}?remove_anyway=yes", headers=HEADERS)
    assert unread.status_code == 400
    assert unread.get_json()["error"]["field"] == "remove_anyway"
    assert "'1', 'true', '0' or 'false'" in unread.get_json()["error"]["message"]
    assert _count() == 1
    assert member.delete(f"{url}?remove_anyway=1", headers=HEADERS).status_code == 204
    assert _count() == 0


@Request.application
def floods(_request: Request) -> Response:
    return Response(b"x" * (2 * 1024 * 1024), 200)  # past the 1 MiB an answer may have


def test_a_revocation_answer_too_large_to_read_is_no_refusal(
    clients: dict[str, FlaskClient], provider: RealProvider
) -> None:
    server = make_server("127.0.0.1", 0, floods, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        account_id = _setup(
            clients, provider, revoke_url=f"http://127.0.0.1:{server.server_port}/revoke")
        refused = clients["member"].delete(f"/api/f/lab/accounts/{account_id}",
                                           headers=HEADERS)
    finally:
        server.shutdown()
        server.server_close()
    assert refused.status_code == 502
    message = refused.get_json()["error"]["message"]
    assert "answer to the revocation could not be read" in message
    assert "larger than 1 MiB" in message and "refused" not in message
    assert _count() == 1  # kept: the person may try again or remove it anyway
