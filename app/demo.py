"""Demo data for `scriptbox serve --demo`: a facility, three users, a provider to sign in to.

The dev OAuth provider (app.devprovider, built on Authlib) is mounted at /demo-provider,
so a newcomer can try the whole flow offline: connect accounts, run scripts, answer a
sign-in prompt. Idempotent: running it again keeps what exists.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from sqlalchemy import select
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from app import db
from app.config import NetworkAllow
from app.devprovider import ClientSpec, ProviderConfig, create_provider_app
from app.errors import NotFound
from app.models import Facility, Integration, Role, Script
from app.services import people, versions

DEMO_PASSWORD = "scriptbox-demo"
PROVIDER_PREFIX = "/demo-provider"
CLIENT_ID = "scriptbox-demo"
DEMO_API_KEY = "demo-api-key"
# A wrong key is refused when it is entered, not on a later run.
DEMO_KEY_VERIFY = {"method": "GET", "path": "/me", "expected_status": 200}
# Who a signed-in demo account is (alice, bob), shown beside the account.
DEMO_WHOAMI = {"method": "GET", "path": "/me", "field": "username"}

USERS = (
    ("admin@example.com", "Avery Admin", Role.admin),
    ("scripter@example.com", "Sam Scripter", Role.scripter),
    ("member@example.com", "Mia Member", Role.member),
)

SCRIPTS = {
    "Who am I at the demo provider": '''\
"""Asks the demo provider who the connected account is."""
resp = integrations.get("demo", "/me")
resp.raise_for_status()
print("signed in at the provider as", resp.json()["username"])
result = resp.json()
''',
    "Echo with an API key": """\
resp = integrations.post("demokey", "/echo", json={"hello": (input or {}).get("name", "world")})
resp.raise_for_status()  # a refused key is an HTTPError that says so, not a missing field
result = {"status": resp.status, "echo": resp.json()["json"]}
""",
    "Ask first, then work": """\
try:
    integrations.require("demo", account="user")
except integrations.NoIntegrationGrant as refused:
    print("no demo account:", refused.reason)
    result = {"connected": False}
else:
    result = {"connected": True, "me": integrations.get("demo", "/me", account="user").json()}
""",
}


def _client_secret(app: Flask) -> str:
    # Derived from the instance's session key so restarts keep matching the stored secret.
    key = str(app.config["SECRET_KEY"]).encode()
    return hmac.new(key, b"scriptbox demo client", hashlib.sha256).hexdigest()


def mount_provider(app: Flask) -> Any:
    """Mount the dev provider at /demo-provider; returns its Flask app."""
    redirect_uri = f"{app.config['PUBLIC_URL']}/oauth/callback"
    provider = create_provider_app(
        ProviderConfig(
            access_token_lifetime=600,
            clients=[
                ClientSpec(
                    client_id=CLIENT_ID,
                    client_secret=_client_secret(app),
                    redirect_uris=[redirect_uri],
                    token_endpoint_auth_method="client_secret_basic",
                )
            ],
            api_keys={DEMO_API_KEY: None},
        )
    )
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {PROVIDER_PREFIX: provider})  # type: ignore[method-assign]
    return provider


def allow_own_address(app: Flask) -> None:
    """Add this server's own address and port to PRIVATE_NETWORK_ALLOW: the demo provider
    is mounted on it, and the server reaches it like any other service."""
    parts = urlsplit(str(app.config["PUBLIC_URL"]))
    port = parts.port or (443 if parts.scheme == "https" else 80)
    infos = socket.getaddrinfo(parts.hostname or "localhost", port, type=socket.SOCK_STREAM)
    own = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    rules = tuple(NetworkAllow(ipaddress.ip_network(a), (port, port)) for a in sorted(own, key=str))
    app.config["PRIVATE_NETWORK_ALLOW"] = (*app.config["PRIVATE_NETWORK_ALLOW"], *rules)
    app.extensions.pop("outbound", None)  # rebuilt with the new list on first use


def install_demo(app: Flask) -> list[str]:
    """Mount the provider and create the demo facility, users, integrations and scripts."""
    mount_provider(app)
    allow_own_address(app)
    base = f"{app.config['PUBLIC_URL']}{PROVIDER_PREFIX}"
    with app.app_context():
        session = db.session()
        facility = session.scalar(select(Facility).where(Facility.slug == "demo"))
        if facility is None:
            facility = people.create_facility(session, name="Demo Lab", slug="demo")
        for email, name, role in USERS:
            try:
                user = people.user_by_email(session, email)
            except NotFound:
                user = people.create_user(session, email=email, name=name, password=DEMO_PASSWORD)
            people.set_membership(session, user=user, facility=facility, role=role)
        _ensure_integrations(app, facility, base)
        author = people.user_by_email(session, USERS[1][0])
        for name, source in SCRIPTS.items():
            script = session.scalar(
                select(Script).where(Script.facility_id == facility.id, Script.name == name)
            )
            if script is None:
                script = Script(
                    facility_id=facility.id,
                    name=name,
                    source=source,
                    published=True,
                    created_by=author.id,
                )
                session.add(script)
                session.flush()
            if script.published and script.published_version is None:
                # Published as a version, as the editor publishes: a script published
                # without one runs its draft for members (older demos made them so), and a
                # scripter's save would have reached members at once.
                version = versions.record_version(session, script=script, user_id=author.id)
                versions.publish_version(
                    session, script=script, number=version.number, by=author.id
                )
        session.commit()
    return [
        "Demo data is ready. Sign in as any of these (password: scriptbox-demo):",
        *(f"  {email:24} {role.value}" for email, _, role in USERS),
        f"The demo OAuth provider runs at {base}/ (users alice and bob).",
        f'The "Demo API (key)" integration accepts the API key {DEMO_API_KEY}.',
    ]


def _ensure_integrations(app: Flask, facility: Facility, base: str) -> None:
    from app.services import integrations_admin

    session = db.session()
    existing = set(
        session.scalars(select(Integration.key).where(Integration.facility_id == facility.id))
    )
    if "demo" not in existing:
        integrations_admin.create_custom(
            session,
            facility=facility,
            fields={
                "key": "demo",
                "name": "Demo provider",
                "auth_mode": "oauth2",
                "base_url": f"{base}/api",
                "authorization_url": f"{base}/authorize",
                "token_url": f"{base}/token",
                "revoke_url": f"{base}/revoke",
                "token_auth_method": "client_secret_basic",
                "scopes": ["read", "write"],
                "pkce": True,
                "whoami": dict(DEMO_WHOAMI),
                "client_id": CLIENT_ID,
                "client_secret": _client_secret(app),
            },
        )
    else:
        # Installs from before who-am-I requests existed get the demo's one too.
        demo = session.scalar(
            select(Integration).where(
                Integration.facility_id == facility.id, Integration.key == "demo"
            )
        )
        if demo is not None and demo.whoami is None:
            demo.whoami = dict(DEMO_WHOAMI)
    if "demokey" in existing:
        # Installs from before verification requests existed get the demo's one too.
        demokey = session.scalar(
            select(Integration).where(
                Integration.facility_id == facility.id, Integration.key == "demokey"
            )
        )
        if demokey is not None and demokey.verify is None:
            demokey.verify = dict(DEMO_KEY_VERIFY)
    else:
        integrations_admin.create_custom(
            session,
            facility=facility,
            fields={
                "key": "demokey",
                "name": "Demo API (key)",
                "auth_mode": "api_key",
                "base_url": f"{base}/keyapi",
                "placements": [
                    {"location": "header", "name": "X-API-Key", "template": "{api_key}"}
                ],
                "credential_fields": ["api_key"],
                "verify": dict(DEMO_KEY_VERIFY),
            },
        )
