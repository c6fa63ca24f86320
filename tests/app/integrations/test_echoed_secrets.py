"""A provider that echoes the request in its refusal hands back no secret, through the
REST API (DESIGN §6: secrets are never returned by the API): a key check's refusal, Test
connection and a failed revocation quote the provider's words with every secret the server
sent taken out (the integration's sealed default values, a Basic header's pair, the OAuth
client secret, the token), even one that the excerpt's length limit would cut in two.

The provider is a real server on loopback that puts the headers and body it received into
its answer; each test checks that it was reached, so the echo really came back."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from app import db, extensions
from app.devprovider import answer_consent
from app.integrations.redaction import REDACTED
from app.models import Account, Role
from tests.app.integrations.conftest import SECRETS, RealProvider
from tests.conftest import demo_oauth_fields, keyed_api_fields, signed_in_lab

CSRF = "test-csrf-token"
HEADERS = {"X-CSRF-Token": CSRF}
# The admin's sealed default header: shaped like a generated key, never shown to anyone.
DEFAULT_SECRET = "tenant9token4sealed7value2"
MEMBER_KEY = "member-typed-key-3c5e9a"
MASTER_USER, MASTER_PASSWORD = "robot", "master-password-71d4c"


@dataclass
class Echo:
    """A loopback provider that answers each request with `status` (200 while `accepting`)
    and an error whose words hold `padding` and then the body and every header it got (or
    only header `only`'s value)."""

    status: int = 401
    padding: str = ""
    only: str | None = None
    accepting: bool = False
    received: list[str] = field(default_factory=list)
    url: str = ""

    def answer(self, request: Request) -> Response:
        got = request.get_data(as_text=True) + " " + " ".join(
            f"{name}: {value}" for name, value in request.headers.items()
        )
        self.received.append(got)
        if self.accepting:
            return Response(json.dumps({"ok": True}), 200, content_type="application/json")
        echoed = got if self.only is None else request.headers.get(self.only, "")
        said = {"error": "invalid_request", "error_description": self.padding + echoed}
        return Response(json.dumps(said), self.status, content_type="application/json")


@pytest.fixture
def echo() -> Iterator[Echo]:
    found = Echo()
    server = make_server("127.0.0.1", 0, Request.application(found.answer), threaded=True)
    found.url = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield found
    server.shutdown()
    server.server_close()


@pytest.fixture
def clients(app: Flask) -> dict[str, FlaskClient]:
    """Clients signed in as an admin and as a member of facility `lab`."""
    return signed_in_lab(app, roles=(Role.admin, Role.member), csrf=CSRF)


def _keyed(admin: FlaskClient, echo: Echo, **fields: Any) -> None:
    body = keyed_api_fields(
        echo.url,
        verify={"method": "GET", "path": "/check", "expected_status": 200},
        default_headers={"X-Tenant": DEFAULT_SECRET},
        **fields,
    )
    created = admin.post("/api/f/lab/integrations", json=body, headers=HEADERS)
    assert created.status_code == 201, created.get_json()


def _leaked(text: str, *secrets: str) -> list[str]:
    return [secret for secret in secrets if secret in text]


def test_a_members_refused_key_does_not_show_the_sealed_default_header(
    clients: dict[str, FlaskClient], echo: Echo
) -> None:
    _keyed(clients["admin"], echo)
    refused = clients["member"].post(
        "/api/f/lab/integrations/keyed/accounts",
        json={"fields": {"api_key": MEMBER_KEY}},
        headers=HEADERS,
    )
    assert refused.status_code == 400, refused.get_json()
    assert DEFAULT_SECRET in echo.received[0]  # it was sent, and echoed back
    message = refused.get_json()["error"]["message"]
    assert "refused the credentials: it answered HTTP 401" in message
    assert _leaked(refused.get_data(as_text=True), DEFAULT_SECRET, MEMBER_KEY) == []
    assert REDACTED in message


def test_a_secret_across_the_excerpts_end_is_not_shown_in_part(
    clients: dict[str, FlaskClient], echo: Echo
) -> None:
    """The excerpt is 300 characters: padding puts the echoed key across that end."""
    _keyed(clients["admin"], echo)
    echo.only, echo.padding = "X-Api-Key", "x" * (300 - 10)  # 10 of its characters in
    refused = clients["member"].post(
        "/api/f/lab/integrations/keyed/accounts",
        json={"fields": {"api_key": MEMBER_KEY}},
        headers=HEADERS,
    )
    assert refused.status_code == 400, refused.get_json()
    assert MEMBER_KEY in echo.received[0]
    assert MEMBER_KEY[:10] not in refused.get_data(as_text=True)


def test_test_connection_does_not_show_the_master_accounts_basic_pair(
    clients: dict[str, FlaskClient], echo: Echo
) -> None:
    admin = clients["admin"]
    _keyed(
        admin,
        echo,
        auth_mode="basic",
        credential_fields=["username", "password"],
        placements=[
            {"location": "basic", "template": "{username}", "password_template": "{password}"}
        ],
    )
    echo.accepting = True
    master = {"username": MASTER_USER, "password": MASTER_PASSWORD}
    connected = admin.post(
        "/api/f/lab/integrations/keyed/master", json={"fields": master}, headers=HEADERS
    )
    assert connected.status_code == 201, connected.get_json()
    echo.accepting = False
    tested = admin.post("/api/f/lab/integrations/keyed/test", json={}, headers=HEADERS)
    assert tested.status_code == 200, tested.get_json()
    pair = base64.b64encode(f"{MASTER_USER}:{MASTER_PASSWORD}".encode()).decode()
    assert pair in echo.received[-1]
    answer = tested.get_json()
    assert answer["ok"] is False and "(the master account)" in answer["message"]
    assert _leaked(tested.get_data(as_text=True), pair, MASTER_PASSWORD, DEFAULT_SECRET) == []
    assert REDACTED in answer["message"]


def _basic_pair(client_id: str) -> str:
    return base64.b64encode(f"{client_id}:{SECRETS[client_id]}".encode()).decode()


def test_oauth_test_connection_does_not_show_the_client_secret(
    clients: dict[str, FlaskClient], echo: Echo, provider: RealProvider
) -> None:
    """The secret is write-only once saved: a token endpoint's echo does not give it back."""
    admin = clients["admin"]
    for client_id, auth in (("basic-client", "client_secret_basic"),
                            ("post-client", "client_secret_post")):
        fields = demo_oauth_fields(
            provider.url, client_id=client_id, client_secret=SECRETS[client_id],
            token_url=f"{echo.url}/token", token_auth_method=auth, key=client_id.split("-")[0],
        )
        created = admin.post("/api/f/lab/integrations", json=fields, headers=HEADERS)
        assert created.status_code == 201, created.get_json()
        echo.status = 400
        tested = admin.post(f"/api/f/lab/integrations/{fields['key']}/test", json={},
                            headers=HEADERS)
        assert tested.status_code == 200, tested.get_json()
        sent = echo.received[-1]
        assert SECRETS[client_id] in sent or _basic_pair(client_id) in sent
        answer = tested.get_json()
        assert answer["ok"] is False and "the provider refused" in answer["message"]
        text = tested.get_data(as_text=True)
        assert _leaked(text, SECRETS[client_id], _basic_pair(client_id)) == [], client_id
        assert REDACTED in answer["message"]


def test_a_failed_revocation_does_not_show_the_member_the_client_secret_or_token(
    clients: dict[str, FlaskClient], echo: Echo, provider: RealProvider
) -> None:
    created = clients["admin"].post(
        "/api/f/lab/integrations",
        json=demo_oauth_fields(
            provider.url, client_id="post-client", client_secret=SECRETS["post-client"],
            token_auth_method="client_secret_post", revoke_url=f"{echo.url}/revoke",
        ),
        headers=HEADERS,
    )
    assert created.status_code == 201, created.get_json()
    member = clients["member"]
    started = member.post("/api/f/lab/integrations/demo/accounts", json={}, headers=HEADERS)
    back = urlsplit(answer_consent(started.get_json()["authorization_url"]))
    assert member.get(f"{back.path}?{back.query}").status_code == 200
    account_id = member.get("/api/f/lab/accounts").get_json()[0]["id"]
    account = db.session.get(Account, account_id)
    assert account is not None and account.credentials_enc is not None
    tokens = extensions.vault().decrypt_json(account.credentials_enc)
    token = tokens.get("refresh_token") or tokens["access_token"]  # the one revoked
    echo.status = 400
    refused = member.delete(f"/api/f/lab/accounts/{account_id}", headers=HEADERS)
    assert refused.status_code == 502, refused.get_json()
    assert SECRETS["post-client"] in echo.received[-1] and token in echo.received[-1]
    message = refused.get_json()["error"]["message"]
    assert "refused to revoke the token" in message
    assert _leaked(refused.get_data(as_text=True), SECRETS["post-client"], token) == []
    assert REDACTED in message


def test_a_basic_header_of_the_admins_own_template_is_checked_too(
    clients: dict[str, FlaskClient], echo: Echo
) -> None:
    """A placement may write "Basic {api_key}" itself, with a key that is no base64 pair:
    the check is still made and answered (a refusal, not a server error)."""
    _keyed(
        clients["admin"],
        echo,
        placements=[{"location": "header", "name": "Authorization", "template": "Basic {api_key}"}],
    )
    key = "not-base64-key-5"  # 16 characters: the padding base64 wants is missing
    refused = clients["member"].post(
        "/api/f/lab/integrations/keyed/accounts", json={"fields": {"api_key": key}},
        headers=HEADERS,
    )
    assert refused.status_code == 400, refused.get_json()
    assert f"Basic {key}" in echo.received[0]
    assert _leaked(refused.get_data(as_text=True), key, DEFAULT_SECRET) == []


def test_a_script_call_with_the_admins_own_basic_template_reaches_the_upstream(
    clients: dict[str, FlaskClient], echo: Echo
) -> None:
    """The broker decoded such a header to redact its pair: a key that is no base64 failed
    every call of the integration with internal_error, before it was sent."""
    admin = clients["admin"]
    _keyed(
        admin,
        echo,
        placements=[{"location": "header", "name": "Authorization", "template": "Basic {api_key}"}],
    )
    echo.accepting = True
    key = "not-base64-key-5"
    master = admin.post("/api/f/lab/integrations/keyed/master",
                        json={"fields": {"api_key": key}}, headers=HEADERS)
    assert master.status_code == 201, master.get_json()
    source = 'result = integrations.get("keyed", "/x").status'
    answer = admin.post("/api/f/lab/runs", json={"source": source, "wait": 60}, headers=HEADERS)
    run = answer.get_json()
    assert (run["status"], run["result"]) == ("succeeded", 200), run
    assert f"Basic {key}" in echo.received[-1]
