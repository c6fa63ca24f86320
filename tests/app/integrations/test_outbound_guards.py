"""Credentials stay at their origin (DESIGN §6): each attack runs against loopback canaries
that record what arrives, and fails when a credential reaches one it should not."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import db, extensions, sandboxes
from app.integrations.call_context import RunContext
from app.models import CallLog, Facility, User
from app.services import connections, integrations_admin
from sandbox import Limits
from tests.app.integrations.conftest import Canary
from tests.conftest import add_member, create_facility, create_user

KEY = "canary-key-5d1e9a"
HEADER = [{"location": "header", "name": "X-API-Key", "template": "{api_key}"}]
QUERY = [{"location": "query", "name": "api_key", "template": "{api_key}"}]
BASIC = [{"location": "basic", "template": "robot", "password_template": "{api_key}"}]

CALL = """
resp = integrations.request(input.get("service", "svc"), input.get("method", "GET"),
                            input["path"], headers=input.get("headers"))
result = {"status": resp.status, "url": resp.url, "headers": dict(resp.headers),
          "text": resp.text}
"""


def lab(session: Session) -> tuple[Facility, User]:
    facility, user = create_facility(session), create_user(session)
    add_member(session, user=user, facility=facility, role="admin")
    return facility, user


def integration(
    session: Session,
    facility: Facility,
    base_url: str,
    *,
    key: str = "svc",
    placements: list[dict[str, str]] = HEADER,
    allowed_hosts: list[str] | None = None,
    api_key: str = KEY,
) -> None:
    """An API-key integration at base_url with its master account connected."""
    created = integrations_admin.create_custom(
        session,
        facility=facility,
        fields={
            "key": key,
            "name": key.title(),
            "auth_mode": "api_key" if placements is not BASIC else "basic",
            "base_url": base_url,
            "credential_fields": ["api_key"],
            "placements": placements,
            "allowed_hosts": allowed_hosts or [],
        },
    )
    connections.connect_with_credentials(
        session,
        integration=created,
        owner="master",
        user_id=None,
        label="",
        fields={"api_key": api_key},
        parameters={},
        vault=extensions.vault(),
    )
    session.commit()


def run(app: Flask, facility: Facility, user: User, run_input: dict[str, Any]) -> Any:
    broker = extensions.build_broker(app, vault=extensions.vault(app))
    outcome = sandboxes.executor(app).run(
        CALL,
        input=run_input,
        on_call=broker.handler(RunContext(facility_id=facility.id, user_id=user.id)),
        limits=Limits(wall_time_s=20),
    )
    broker.flush()
    return outcome


# -- 3. scheme, host, port and base path on every hop ---------------------------------------


@pytest.mark.parametrize(
    ("base", "path"),
    [
        ("{canary}/base", "{second}/base/x"),  # another port of the same host
        ("https://127.0.0.1:{port}/base", "http://127.0.0.1:{port}/base/x"),  # plain http
        ("{canary}/base", "{canary}/admin"),  # outside the base path, absolute
        ("{canary}/base", "{canary}/base/../admin"),  # outside the base path, dot segments
        ("{canary}/base", "/redirect?to={second}/base/x"),  # a 302 to another port
        ("{canary}/base", "/redirect?to={canary}/admin"),  # a 302 outside the base path
        ("{canary}/base", "/redirect?to=http://localhost:{port}/base/x"),  # a 302 to another host
    ],
)
def test_credentials_go_only_to_the_integrations_origin_and_base_path(
    make: Any, canary: Canary, second_canary: Canary, base: str, path: str
) -> None:
    app = make()
    session = db.session()
    facility, user = lab(session)
    fill = {"canary": canary.url, "second": second_canary.url, "port": canary.port}
    integration(session, facility, base.format(**fill))
    outcome = run(app, facility, user, {"path": path.format(**fill)})
    assert outcome.error is not None and outcome.error.code == "forbidden_destination"
    assert second_canary.leaked(KEY) == []
    assert [a.path for a in canary.leaked(KEY) if not a.path.startswith("/base/")] == []


def test_allowed_origins_may_carry_a_path_and_the_call_log_names_the_origin(
    make: Any, canary: Canary, second_canary: Canary
) -> None:
    app = make()
    session = db.session()
    facility, user = lab(session)
    integration(
        session, facility, f"{canary.url}/base", allowed_hosts=[f"{second_canary.url}/files"]
    )
    inside = run(app, facility, user, {"path": f"{second_canary.url}/files/a?x=secret-words"})
    assert inside.ok and inside.result["status"] == 200
    assert [a.path for a in second_canary.leaked(KEY)] == ["/files/a?x=secret-words"]
    outside = run(app, facility, user, {"path": f"{second_canary.url}/other"})
    assert outside.error.code == "forbidden_destination"
    assert f"{second_canary.url}/other" in outside.error.message
    assert [a.path for a in second_canary.arrivals] == ["/files/a?x=secret-words"]
    rows = session.scalars(select(CallLog).order_by(CallLog.id)).all()
    assert [(r.path, r.error_code) for r in rows] == [
        (f"{second_canary.url}/files/a?x=", None),
        (f"{second_canary.url}/other", "forbidden_destination"),
    ]


def test_a_redirect_within_the_origin_is_followed(make: Any, canary: Canary) -> None:
    app = make()
    session = db.session()
    facility, user = lab(session)
    integration(session, facility, f"{canary.url}/base")
    outcome = run(app, facility, user, {"path": f"/redirect?to={canary.url}/base/next"})
    assert outcome.ok and outcome.result["status"] == 200
    assert [a.path for a in canary.leaked(KEY)][-1] == "/base/next"


# -- 6. headers that reroute, exact keys, methods --------------------------------------------


@pytest.mark.parametrize(
    ("run_input", "code"),
    [
        ({"headers": {"Host": "evil.example"}}, "forbidden_destination"),
        ({"headers": {"host": "evil.example"}}, "forbidden_destination"),
        ({"headers": {"X-Forwarded-Host": "evil.example"}}, "forbidden_destination"),
        ({"headers": {"X-Forwarded-For": "10.0.0.1"}}, "forbidden_destination"),
        ({"headers": {"Forwarded": "host=evil.example"}}, "forbidden_destination"),
        ({"service": "SVC"}, "unknown_integration"),
        ({"service": "Svc"}, "unknown_integration"),
        ({"method": "OPTIONS"}, "invalid_request"),
        ({"method": "TRACE"}, "invalid_request"),
        ({"method": "CONNECT"}, "invalid_request"),
    ],
)
def test_rerouting_headers_inexact_keys_and_other_methods_are_refused(
    make: Any, canary: Canary, run_input: dict[str, Any], code: str
) -> None:
    app = make()
    session = db.session()
    facility, user = lab(session)
    integration(session, facility, f"{canary.url}/base")
    outcome = run(app, facility, user, {"path": "/x", **run_input})
    assert outcome.error is not None and outcome.error.code == code
    assert canary.arrivals == []


@pytest.mark.parametrize(
    ("placements", "run_input", "code"),
    [
        (QUERY, {"path": "/items?api_key=mine"}, "forbidden_destination"),
        (QUERY, {"path": "/items?page=1&API_KEY=mine"}, "forbidden_destination"),
        (HEADER, {"headers": {"X-API-Key ": "mine"}}, "invalid_request"),
        (HEADER, {"headers": {"X-API-Key\t": "mine"}}, "invalid_request"),
        (HEADER, {"headers": {"X-Note": "mine \u202e"}}, "invalid_request"),
        (HEADER, {"path": "http://127.0.0.1:{port}./base/mine"}, "forbidden_destination"),
        (HEADER, {"path": "http://127.0.0.1:{port}:80/base/mine"}, "forbidden_destination"),
    ],
    ids=["query-in-path", "query-in-path-other-case", "header-name-space", "header-name-tab",
         "header-value-not-latin-1", "port-with-dot", "two-ports"],
)
def test_a_script_cannot_set_the_credential_however_it_spells_it(
    make: Any, canary: Canary, placements: list[dict[str, str]], run_input: dict[str, Any],
    code: str,
) -> None:
    app = make()
    session = db.session()
    facility, user = lab(session)
    integration(session, facility, f"{canary.url}/base", placements=placements)
    run_input = {"path": "/x", **run_input}
    run_input["path"] = run_input["path"].format(port=canary.port)
    outcome = run(app, facility, user, run_input)
    assert outcome.error is not None, outcome.result
    assert (outcome.error.code, bool(outcome.error.message)) == (code, True)
    assert [a.path for a in canary.arrivals] == []


# -- 4 and 5. nothing the script gets back holds a credential --------------------------------


def test_the_url_returned_to_the_script_loses_credential_query_parameters(
    make: Any, canary: Canary
) -> None:
    app = make()
    session = db.session()
    facility, user = lab(session)
    integration(session, facility, f"{canary.url}/base", placements=QUERY)
    outcome = run(app, facility, user, {"path": "/items?page=2"})
    assert outcome.ok and outcome.result["status"] == 200
    assert canary.arrivals[0].path == f"/base/items?page=2&api_key={KEY}"  # it was sent
    assert outcome.result["url"] == f"{canary.url}/base/items?page=2"


@pytest.mark.parametrize(
    ("placements", "secret"),
    [(HEADER, KEY), (QUERY, "k3y/with+special=chars&more"), (BASIC, "basic-pass-77c1")],
)
def test_secrets_reflected_by_the_upstream_are_redacted(
    make: Any, canary: Canary, placements: list[dict[str, str]], secret: str
) -> None:
    app = make()
    session = db.session()
    facility, user = lab(session)
    integration(session, facility, f"{canary.url}/base", placements=placements, api_key=secret)
    outcome = run(app, facility, user, {"path": "/echo"})
    assert outcome.ok and outcome.result["status"] == 200
    assert canary.leaked(secret), "the credential must reach its own service"
    shown = repr(outcome.to_dict())
    for form in (
        secret,
        quote(secret, safe=""),
        base64.b64encode(secret.encode()).decode(),
        base64.b64encode(f"robot:{secret}".encode()).decode(),
    ):
        assert form not in shown
    assert "[redacted]" in outcome.result["text"]
    if placements is not QUERY:  # the canary reflects request headers as response headers
        assert "[redacted]" in repr(outcome.result["headers"])


def test_a_refused_redirect_is_reported_by_its_origin_only(
    make: Any, canary: Canary, second_canary: Canary
) -> None:
    app = make()
    session = db.session()
    facility, user = lab(session)
    integration(session, facility, f"{canary.url}/base")
    # A reflecting service may put the credential into the redirect's path or query.
    target = f"{second_canary.url}/{KEY}/x?token={KEY}"
    outcome = run(app, facility, user, {"path": f"/redirect?to={quote(target, safe='')}"})
    assert outcome.error.code == "forbidden_destination"
    assert f"redirected to {second_canary.url} outside" in outcome.error.message
    assert KEY not in repr(outcome.to_dict())
    row = session.scalars(select(CallLog)).one()
    assert row.path == second_canary.url and row.error_code == "forbidden_destination"
    assert second_canary.arrivals == []
