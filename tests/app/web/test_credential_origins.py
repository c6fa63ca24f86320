"""An admin cannot read secrets back by moving an integration's origins to a server of
theirs (DESIGN §5, §6): a loopback listener stands in for that server. Moving the base URL
signs every account out before a script's call could carry its key there; moving the token
URL needs the client secret typed again; a path-only change or a removed host keeps them."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from types import SimpleNamespace
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
    serve_in_thread,
)
from app.models import Account, Integration, Role, User
from app.services.credential_origins import origin_change, secret_origins
from app.testing import LiveServer, WebClient
from tests.conftest import demo_oauth_fields, keyed_api_fields, signed_in_lab
from tests.listener import Listener

CSRF = "test-csrf-token"
HEADERS = {"X-CSRF-Token": CSRF}
# The canaries: secrets saved before the admin moves an origin; none may reach the listener.
MEMBER_KEY = "canary-member-own-key"
MASTER_KEY = "canary-master-key"
CLIENT_SECRET = "canary-client-secret"
STEALS = """
try:
    integrations.post("keyed", "/steal", account="master")
    master = "sent"
except integrations.NoIntegrationGrant as refused:
    master = refused.reason
integrations.post("keyed", "/steal", account="user")
result = master
"""


@pytest.fixture
def world(live: LiveServer) -> Iterator[dict[str, Any]]:
    """A provider with keys and an OAuth client; integrations `keyed` (master and the
    member's own key connected) and `demo` (OAuth, with a client secret); admin, member."""
    spec = ClientSpec(
        "canary-client",
        CLIENT_SECRET,
        [f"{live.url}/oauth/callback"],
        token_endpoint_auth_method="client_secret_basic",
    )
    config = ProviderConfig(api_keys={MEMBER_KEY: None, MASTER_KEY: None}, clients=[spec])
    with serve_in_thread(create_provider_app(config)) as provider:
        with live.app.app_context():
            by_role = signed_in_lab(live.app, roles=(Role.admin, Role.scripter), csrf=CSRF)
            db.session.remove()
        admin, member = by_role["admin"], by_role["scripter"]
        for body in (
            keyed_api_fields(provider.url, allowed_hosts=["files.example.com"]),
            demo_oauth_fields(provider.url, client_id="canary-client", client_secret=CLIENT_SECRET),
        ):
            created = admin.post("/api/f/lab/integrations", json=body, headers=HEADERS)
            assert created.status_code == 201, created.get_json()
        for client, path, key in (
            (admin, "master", MASTER_KEY),
            (member, "accounts", MEMBER_KEY),
        ):
            connected = client.post(
                f"/api/f/lab/integrations/keyed/{path}",
                json={"fields": {"api_key": key}},
                headers=HEADERS,
            )
            assert connected.status_code == 201, connected.get_json()
        started = member.post("/api/f/lab/integrations/demo/accounts", json={}, headers=HEADERS)
        back = urlsplit(answer_consent(started.get_json()["authorization_url"]))
        assert member.get(f"{back.path}?{back.query}").status_code == 200
        yield {"live": live, "provider": provider.url, "admin": admin, "member": member}


@pytest.fixture
def thief() -> Iterator[Listener]:
    """The admin's own server: a loopback listener recording what reaches it."""
    server = Listener().start()
    yield server
    server.close()


def _patch(admin: FlaskClient, key: str, body: dict[str, Any]) -> Any:
    return admin.patch(f"/api/f/lab/integrations/{key}", json=body, headers=HEADERS)


def _origin(server: Listener) -> str:
    return f"http://127.0.0.1:{server.port}"


def _canaries_received(server: Listener, *canaries: str) -> list[str]:
    """Each canary found in what reached the listener so far (a Basic header decoded)."""
    seen = []
    while not server.received.empty():
        got = server.received.get_nowait()
        text = " ".join([*got.headers.values(), got.body.decode(errors="replace")])
        basic = got.headers.get("Authorization", "").removeprefix("Basic ")
        text += " " + base64.b64decode(basic + "==").decode(errors="replace")
        seen += [canary for canary in canaries if canary in text]
    return seen


def _member_page(world: dict[str, Any]) -> WebClient:
    """The member (scripter) as a browser that can hold a websocket page open."""
    with world["live"].app.app_context():
        member_id = db.session.scalars(
            select(User.id).where(User.email == f"{Role.scripter}@example.com")
        ).one()
        db.session.remove()
    return WebClient(world["live"].app, world["live"].url, member_id)


def _accounts(world: dict[str, Any], key: str) -> list[tuple[str, bool]]:
    """Each account of integration `key`: its status and whether it holds credentials."""
    with world["live"].app.app_context():
        rows = db.session.scalars(
            select(Account).join(Integration).where(Integration.key == key).order_by(Account.id)
        ).all()
        found = [(a.status, a.credentials_enc is not None) for a in rows]
        db.session.remove()
    return found


def test_a_base_url_moved_to_the_admins_server_receives_no_accounts_key(
    world: dict[str, Any], thief: Listener
) -> None:
    saved = _patch(world["admin"], "keyed", {"base_url": f"{_origin(thief)}/api"})
    assert saved.status_code == 200, saved.get_json()
    member = _member_page(world)
    page = member.websocket("lab")
    page.wait_for("hello")
    # Answered once the run ends or pauses for a sign-in: its calls were sent, or not.
    run = member.api(
        "POST", "/api/f/lab/runs", json={"source": STEALS, "interactive": True, "wait": 60}
    ).json()
    assert _canaries_received(thief, MEMBER_KEY, MASTER_KEY) == []
    # The member's own call asks them to connect again; the master's was refused.
    assert run["status"] == "waiting_for_grant", run
    assert run["prompt"]["reason"] == "needs_reauth"
    assert _accounts(world, "keyed") == [("needs_reauth", False), ("needs_reauth", False)]
    answer = saved.get_json()
    assert answer["accounts_to_reconnect"] == 2
    assert answer["reconnect_message"] == (
        "2 connected account(s) must connect again: their credentials were issued for "
        f"{world['provider']}, http://files.example.com, not for {_origin(thief)}"
    )
    # Connecting again, knowingly, sends the key typed for the new origin there.
    prompt = page.wait_for("grant.required")
    signed = member.post_form(prompt["sign_in_url"], {"api_key": "typed-for-the-new-origin"})
    assert signed.status_code == 200, signed.text
    finished = page.wait_for("run.finished", run_id=run["id"])["run"]
    assert finished["status"] == "succeeded", finished
    assert finished["result"] == "master_needs_reauth"
    assert _canaries_received(thief, MEMBER_KEY, MASTER_KEY, "typed-for-the-new-origin") == [
        "typed-for-the-new-origin"
    ]


def test_a_token_url_moved_to_the_admins_server_needs_the_client_secret_again(
    world: dict[str, Any], thief: Listener
) -> None:
    admin = world["admin"]
    saved = _patch(admin, "demo", {"token_url": f"{_origin(thief)}/token"})
    tested = admin.post("/api/f/lab/integrations/demo/test", json={}, headers=HEADERS)
    assert tested.status_code == 200, tested.get_json()
    assert _canaries_received(thief, CLIENT_SECRET) == []
    assert saved.status_code == 400, saved.get_json()
    error = saved.get_json()["error"]
    assert error["field"] == "client_secret", error
    assert f"would now be sent to {_origin(thief)}: enter it again" in error["message"]
    assert tested.get_json()["ok"] is True  # still asked of the provider
    assert _accounts(world, "demo") == [("active", True)]


def test_the_client_secret_typed_again_lets_the_token_url_move(
    world: dict[str, Any], thief: Listener
) -> None:
    admin = world["admin"]
    saved = _patch(
        admin, "demo", {"token_url": f"{_origin(thief)}/token", "client_secret": "typed-again"}
    )
    assert saved.status_code == 200, saved.get_json()
    assert saved.get_json()["accounts_to_reconnect"] == 1
    assert _accounts(world, "demo") == [("needs_reauth", False)]
    admin.post("/api/f/lab/integrations/demo/test", json={}, headers=HEADERS)
    assert _canaries_received(thief, CLIENT_SECRET, "typed-again") == ["typed-again"]


DEFAULT_TOKEN = "canary-default-token"


def test_saved_secret_defaults_must_be_sent_again_to_move_the_base_url(
    world: dict[str, Any], thief: Listener
) -> None:
    # Their values are shown masked: a default header named like a credential is a secret
    # typed for the old origin, as the accounts' keys are. A public one (Accept) is not.
    admin, moved = world["admin"], {"base_url": f"{_origin(thief)}/api"}
    defaults = {"X-Tenant-Token": DEFAULT_TOKEN, "Accept": "application/json"}
    assert _patch(admin, "keyed", {"default_headers": defaults}).status_code == 200
    refused = _patch(admin, "keyed", moved)
    assert refused.status_code == 400, refused.get_json()
    error = refused.get_json()["error"]
    assert error["field"] == "default_headers", error
    assert error["message"] == (
        f"default_headers: the saved value of X-Tenant-Token would now be sent to "
        f"{_origin(thief)}: send default_headers again with its value"
    )
    assert _accounts(world, "keyed") == [("active", True), ("active", True)]
    retyped = {"X-Tenant-Token": "typed-for-the-new-origin", "Accept": "application/json"}
    saved = _patch(admin, "keyed", {**moved, "default_headers": retyped})
    assert saved.status_code == 200, saved.get_json()
    assert saved.get_json()["accounts_to_reconnect"] == 2


@pytest.mark.parametrize(
    ("key", "change"),
    [
        ("keyed", {"base_url": "{provider}/keyapi/v2"}),
        ("keyed", {"allowed_hosts": []}),
        ("demo", {"token_url": "{provider}/oauth/token", "revoke_url": "{provider}/revoke"}),
    ],
    ids=["path-only", "host-removed", "token-path-only"],
)
def test_a_change_sending_secrets_nowhere_new_keeps_accounts(
    world: dict[str, Any], key: str, change: dict[str, Any]
) -> None:
    before = _accounts(world, key)
    body = {
        name: value.format(provider=world["provider"]) if isinstance(value, str) else value
        for name, value in change.items()
    }
    saved = _patch(world["admin"], key, body)  # no client secret: none is needed
    assert saved.status_code == 200, saved.get_json()
    assert saved.get_json()["accounts_to_reconnect"] == 0
    assert _accounts(world, key) == before
    assert all(state == ("active", True) for state in before)


KEYED = {"auth_mode": "api_key", "base_url": "https://api.example.com/v1", "allowed_hosts": []}
OAUTH = {**KEYED, "auth_mode": "oauth2", "token_url": "https://auth.example.com/token"}
# (values, the origins their secrets go to): spelled as the destination rules read them.
ORIGINS = [
    (KEYED, {"https://api.example.com"}),
    ({**KEYED, "base_url": "https://API.example.com:443/v2"}, {"https://api.example.com"}),
    ({**KEYED, "base_url": "https://api.example.com:8443/v1"}, {"https://api.example.com:8443"}),
    ({**KEYED, "base_url": "http://api.example.com/v1"}, {"http://api.example.com"}),
    (
        {**KEYED, "allowed_hosts": ["files.example.com", "https://up.example.com/v1"]},
        {"https://api.example.com", "https://files.example.com", "https://up.example.com"},
    ),
    # An http host never receives an https integration's credentials.
    ({**KEYED, "allowed_hosts": ["http://plain.example.com"]}, {"https://api.example.com"}),
    (
        {**KEYED, "base_url": "https://{tenant}.example.com/api"},
        {"https://{tenant}.example.com"},
    ),
    ({**KEYED, "token_url": "https://auth.example.com/token"}, {"https://api.example.com"}),
    (OAUTH, {"https://api.example.com", "https://auth.example.com"}),
    (
        {**OAUTH, "revoke_url": "https://revoke.example.com/r"},
        {"https://api.example.com", "https://auth.example.com", "https://revoke.example.com"},
    ),
]


def test_a_base_url_moved_needs_no_client_secret_and_keeps_it(
    world: dict[str, Any], thief: Listener
) -> None:
    # The client secret goes to the token URL only: a new base URL signs the accounts out
    # (their tokens would go there) but asks nothing of it, and it still works.
    admin = world["admin"]
    saved = _patch(admin, "demo", {"base_url": f"{_origin(thief)}/api"})
    assert saved.status_code == 200, saved.get_json()
    assert saved.get_json()["accounts_to_reconnect"] == 1
    tested = admin.post("/api/f/lab/integrations/demo/test", json={}, headers=HEADERS)
    assert tested.get_json()["ok"] is True, tested.get_json()  # the saved secret, as before
    assert _canaries_received(thief, CLIENT_SECRET) == []


# (saved, saving, the origins added, the client secret's new origins among them)
CHANGES = [
    (KEYED, {"base_url": "https://api.example.com/v2"}, set(), set()),
    (KEYED, {"base_url": "https://other.example.com/v1"}, {"https://other.example.com"}, set()),
    (OAUTH, {"base_url": "https://other.example.com/v1"}, {"https://other.example.com"}, set()),
    (OAUTH, {"token_url": "https://auth.example.com/v2/token"}, set(), set()),
    (
        OAUTH,
        {"token_url": "https://evil.example.com/token"},
        {"https://evil.example.com"},
        {"https://evil.example.com"},
    ),
    # Already an origin of the calls, new to the client secret: it must be typed again.
    (
        OAUTH,
        {"token_url": "https://api.example.com/token"},
        {"https://api.example.com"},
        {"https://api.example.com"},
    ),
    (OAUTH, {"allowed_hosts": ["files.example.com"]}, {"https://files.example.com"}, set()),
]


@pytest.mark.parametrize(("saved", "saving", "added", "secret_to"), CHANGES)
def test_what_a_save_adds(
    saved: dict[str, Any], saving: dict[str, Any], added: set[str], secret_to: set[str]
) -> None:
    integration = SimpleNamespace(**{"revoke_url": None, "token_url": None, **saved})
    change = origin_change(integration, saving)  # type: ignore[arg-type]
    if not added:
        assert change is None
        return
    assert change is not None
    assert (change.added, change.secret_to) == (added, secret_to)


@pytest.mark.parametrize(("values", "expected"), ORIGINS)
def test_the_origins_secrets_go_to(values: dict[str, Any], expected: set[str]) -> None:
    assert secret_origins(values) == expected
