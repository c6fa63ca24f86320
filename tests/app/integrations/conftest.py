"""A real OAuth2 provider and API on loopback (app.devprovider, built on Authlib)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from app import db
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
from tests.conftest import add_member, create_facility, create_user, demo_oauth_fields, make_app

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


def admin_lab(session: Session) -> dict[str, Any]:
    """Facility `lab` and its admin Ada (ada@example.com), committed: "facility", "user"."""
    facility = create_facility(session, slug="lab")
    user = create_user(session)
    add_member(session, user=user, facility=facility, role="admin")
    session.commit()
    return {"facility": facility, "user": user}


@pytest.fixture
def lab(app: Flask, session: Session) -> dict[str, Any]:
    """admin_lab in the test's app."""
    return admin_lab(session)


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
    values = demo_oauth_fields(
        provider.url,
        client_id=client,
        client_secret=SECRETS[client],
        key=key,
        revoke_url=f"{provider.url}/revoke",
        scopes=["read", "write"],
        **({"token_auth_method": "client_secret_post"} if client == "post-client" else {}),
    )
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
    from app.services import oauth_sign_in

    url = oauth_sign_in.start_authorization(
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


@dataclass
class Arrival:
    """One request a canary received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def holds(self, secret: str) -> bool:
        """True when the secret arrived in any spelling (raw, URL-encoded, base64)."""
        import base64
        from urllib.parse import quote

        text = repr((self.path, self.headers, self.body))
        forms = (secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode())
        return any(form in text for form in forms) or any(
            secret in base64.b64decode(v.split()[-1] + "==").decode("latin-1")
            for k, v in self.headers.items()
            if k.lower() == "authorization" and v.lower().startswith("basic ")
        )


class Canary:
    """A loopback HTTP listener that records every request; an echo server otherwise.

    `/…redirect?to=URL` answers 302 to URL; everything else answers 200 with a JSON echo
    of method, path, query and headers, and reflects the request's headers back as
    `X-Echo-<name>` response headers (as some real upstreams and debugging proxies do).
    """

    def __init__(self) -> None:
        import http.server
        import json
        import threading

        arrivals: list[Arrival] = []
        self.arrivals = arrivals

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = dict(self.headers.items())
                arrivals.append(Arrival(self.command, self.path, headers, body))
                parts = urlsplit(self.path)
                if parts.path.endswith("redirect"):
                    self.send_response(302)
                    self.send_header("Location", parse_qs(parts.query)["to"][0])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = json.dumps(
                    {"method": self.command, "path": self.path, "headers": headers}
                ).encode()
                self.send_response(200)
                for name, value in headers.items():
                    self.send_header(f"X-Echo-{name}", value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def leaked(self, *secrets: str) -> list[Arrival]:
        """The requests that carried any of the secrets."""
        return [a for a in self.arrivals if any(a.holds(s) for s in secrets)]

    def close(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def canary() -> Iterator[Canary]:
    """A recording loopback listener (see Canary)."""
    listener = Canary()
    yield listener
    listener.close()


@pytest.fixture
def second_canary() -> Iterator[Canary]:
    """Another recording listener, on another port of the same host."""
    listener = Canary()
    yield listener
    listener.close()


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Any]:
    """Build an app with the given settings; yields a factory (one app per test)."""
    made: list[tuple[Flask, Any]] = []

    def build(**config: Any) -> Flask:
        folder = tmp_path / f"app{len(made)}"
        folder.mkdir()
        app = make_app(folder, **config)
        context = app.app_context()
        context.push()
        made.append((app, context))
        return app

    yield build
    for app, context in reversed(made):
        db.session.remove()
        context.pop()
        executor = app.extensions.get("sandbox")
        if executor is not None:
            executor.close()
