"""Issue 8.18: wrong input of any type is a 400 naming the field, never a 500.

Table-driven over every route of the app/web/api package that reads input, against a live
server: each field gets every wrong JSON type in turn, on top of an otherwise valid request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from app import db
from app.models import Facility, Role, Run, Script
from app.testing import LiveServer, WebClient
from tests.conftest import (
    PASSWORD,
    add_member,
    create_closed_oauth_integration,
    create_integration,
    create_user,
)

TEXT = [5, 1.5, True, [], {}, ["a"]]
BOOL = ["yes", 1, 0.5, [], {}]
INT = ["x", "1.5", 1.5, True, [], {}, "--5", "²", 10**30, "99999999999999999999"]
NUMBER = ["soon", True, [], {}, "nan", "inf", 10**400]
OBJECT = ["x", 5, True, [], ["a"]]
TEXT_OBJECT = [*OBJECT, {"k": 5}, {"k": None}, {"k": ["a"]}]
TEXT_LIST = ["x", 5, True, {}, [5], [None], [{}]]
OBJECT_LIST = ["x", 5, True, {}, [5], ["x"], [[]]]
QUERY_INT = ["x", "1.5", "1e3", "0x10", " ", "--5", "²", "99999999999999999999"]
# Text objects whose wrong values name the value's own field (as the forms do).
ITEM_FIELDS = {"fields": "{key}", "parameters": "param_{key}"}
NOT_AN_OBJECT = ["[]", '"text"', "5", "null", "{not json", "true"]

CUSTOM = {
    "key": "custom",
    "name": "Custom",
    "auth_mode": "api_key",
    "base_url": "https://api.example.com",
    "credential_fields": ["api_key"],
    "placements": [{"location": "header", "name": "X-Key", "template": "{api_key}"}],
}
INTEGRATION_FIELDS = {
    "key": TEXT,
    "name": TEXT,
    "auth_mode": TEXT,
    "base_url": TEXT,
    "authorization_url": TEXT,
    "token_url": TEXT,
    "revoke_url": TEXT,
    "token_request_method": TEXT,
    "token_auth_method": TEXT,
    "scope_separator": TEXT,
    "scopes": TEXT_LIST,
    "credential_fields": TEXT_LIST,
    "allowed_hosts": TEXT_LIST,
    "placements": OBJECT_LIST,
    "parameters": OBJECT_LIST,
    "authorization_params": TEXT_OBJECT,
    "default_headers": TEXT_OBJECT,
    "default_query": TEXT_OBJECT,
    "verify": OBJECT,
    "pkce": BOOL,
    "refresh_on_403": BOOL,
    "allow_private_network": BOOL,
    "client_id": TEXT,
    "client_secret": TEXT,
}


@dataclass
class Route:
    """One route: its valid request and the wrong values to try per field."""

    method: str
    path: str
    fields: dict[str, list[Any]]
    base: dict[str, Any] = field(default_factory=dict)
    query: bool = False

    @property
    def id(self) -> str:
        return f"{self.method} {self.path} {'+'.join(sorted(self.base)) or ''}".strip()


ROUTES = [
    Route("POST", "/api/tokens", {"name": TEXT}),
    Route(
        "POST",
        "/api/me/password",
        {"current_password": TEXT, "new_password": TEXT},
        base={"current_password": PASSWORD, "new_password": PASSWORD},
    ),
    Route(
        "POST",
        "/api/f/lab/scripts",
        {"name": TEXT, "source": TEXT, "description": TEXT},
        base={"name": "A script", "source": "result = 1"},
    ),
    Route(
        "PATCH",
        "/api/f/lab/scripts/{script}",
        {"name": TEXT, "source": TEXT, "description": TEXT, "published": BOOL},
    ),
    Route("POST", "/api/f/lab/readiness", {"source": TEXT}, base={"source": "result = 1"}),
    Route(
        "POST",
        "/api/f/lab/runs",
        {"script_id": INT, "wait": NUMBER, "interactive": BOOL},
        base={"script_id": "{script}"},
    ),
    Route("POST", "/api/f/lab/runs", {"source": TEXT}, base={"source": "result = 1"}),
    Route("GET", "/api/f/lab/runs", {"script_id": QUERY_INT, "limit": QUERY_INT}, query=True),
    Route(
        "POST",
        "/api/f/lab/members",
        {"email": TEXT, "role": TEXT},
        base={"email": "new@example.com", "role": "member"},
    ),
    Route("PATCH", "/api/f/lab/members/{bo}", {"role": TEXT}, base={"role": "scripter"}),
    Route("GET", "/api/f/lab/calls", {"user": QUERY_INT, "script": QUERY_INT}, query=True),
    Route(
        "POST",
        "/api/f/lab/integrations",
        {
            "catalog_key": TEXT,
            "key": TEXT,
            "client_id": TEXT,
            "client_secret": TEXT,
            "overrides": OBJECT,
        },
        base={"catalog_key": "github", "client_id": "cid", "client_secret": "secret"},
    ),
    Route("POST", "/api/f/lab/integrations", INTEGRATION_FIELDS, base=CUSTOM),
    # An edit names something to change (an empty one is refused as such).
    Route("PATCH", "/api/f/lab/integrations/oauthy", INTEGRATION_FIELDS, base={"name": "OAuthy"}),
    Route(
        "POST",
        "/api/f/lab/integrations/keyed/master",
        {"label": TEXT, "fields": TEXT_OBJECT, "parameters": TEXT_OBJECT},
        base={"fields": {"api_key": "k"}},
    ),
    Route(
        "POST",
        "/api/f/lab/integrations/keyed/accounts",
        {"label": TEXT, "fields": TEXT_OBJECT, "parameters": TEXT_OBJECT},
        base={"fields": {"api_key": "k"}},
    ),
    Route(
        "POST",
        "/api/f/lab/integrations/keyed/test",
        {"fields": TEXT_OBJECT, "parameters": TEXT_OBJECT},
        base={"fields": {"api_key": "k"}},
    ),
    Route(
        "POST",
        "/api/f/lab/integrations/oauthy/accounts",
        {"label": TEXT, "parameters": TEXT_OBJECT, "return_to": TEXT},
    ),
    Route(
        "POST",
        "/api/f/lab/integrations/oauthy/accounts/code",
        {
            "code": TEXT,
            "redirect_uri": TEXT,
            "code_verifier": TEXT,
            "label": TEXT,
            "parameters": TEXT_OBJECT,
        },
        base={
            "code": "abc",
            "redirect_uri": "https://app.example.com/cb",
            "code_verifier": "v" * 43,
        },
    ),
]
# Routes that read a JSON body (each must refuse a body that is not an object).
BODY_ROUTES = sorted({(r.method, r.path) for r in ROUTES if not r.query})


@pytest.fixture
def admin(live: LiveServer) -> tuple[WebClient, dict[str, Any]]:
    """An admin of `lab` with a script, an API-key and an OAuth integration; their browser."""
    with live.app.app_context():
        session = db.session()
        lab = Facility(name="The Lab", slug="lab")
        session.add(lab)
        session.flush()
        user = create_user(session, email="admin@example.com")
        bo = create_user(session, email="bo@example.com")
        add_member(session, user=bo, facility=lab, role=Role.member)
        add_member(session, user=user, facility=lab, role=Role.admin)
        create_integration(session, facility=lab, key="keyed")
        create_closed_oauth_integration(session, facility=lab)
        script = Script(facility_id=lab.id, name="S", source="result = 1", published=True)
        session.add(script)
        session.flush()
        session.add(Run(facility_id=lab.id, user_id=user.id, source="result = 1"))
        session.commit()
        ids = {"script": script.id, "bo": bo.id}
    return WebClient(live.app, live.url, user.id), ids


def _fill(value: Any, ids: dict[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids.get(value[1:-1], value)
    return value


def _problems(client: WebClient, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    response = client.api(method, path, **kwargs)
    try:
        payload = response.json()
    except ValueError:
        payload = response.text[:200]
    return response.status_code, payload


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.id)
def test_every_field_refuses_every_wrong_type_with_a_400_naming_it(
    admin: tuple[WebClient, dict[str, Any]], route: Route
) -> None:
    client, ids = admin
    path = route.path.format(**ids)
    base = {k: _fill(v, ids) for k, v in route.base.items()}
    if not route.query:
        # The request without a wrong field is not refused for its input: what the
        # loop below sees is caused by the one wrong field.
        status, payload = _problems(client, route.method, path, json=base)
        assert status != 400, payload
    failures = []
    for name, wrong_values in route.fields.items():
        for wrong in wrong_values:
            if route.query:
                status, payload = _problems(client, route.method, path, params={name: wrong})
            else:
                status, payload = _problems(
                    client, route.method, path, json={**base, name: wrong}
                )
            error = payload.get("error", {}) if isinstance(payload, dict) else {}
            expected = {name}
            if wrong_values is TEXT_OBJECT and isinstance(wrong, dict) and name in ITEM_FIELDS:
                expected = {ITEM_FIELDS[name].format(key=key) for key in wrong}
            if status != 400 or error.get("field") not in expected:
                failures.append((name, wrong, status, payload))
    assert failures == []


@pytest.mark.parametrize(("method", "template"), BODY_ROUTES)
def test_a_body_that_is_not_a_json_object_is_a_400(
    admin: tuple[WebClient, dict[str, Any]], method: str, template: str
) -> None:
    client, ids = admin
    failures = []
    for raw in NOT_AN_OBJECT:
        status, payload = _problems(
            client,
            method,
            template.format(**ids),
            data=raw,
            headers={"Content-Type": "application/json"},
        )
        error = payload.get("error", {}) if isinstance(payload, dict) else {}
        if status != 400 or error.get("field") != "body":
            failures.append((raw, status, payload))
    assert failures == []


# Numbers Python's JSON reads but no JSON column stores (PostgreSQL refused them with a
# 500) and no browser reads back (a page listing the run broke): each is a 400.
UNSTORABLE_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]


@pytest.mark.parametrize(("method", "template"), BODY_ROUTES)
def test_a_body_with_a_number_json_cannot_hold_is_a_400_saying_so(
    admin: tuple[WebClient, dict[str, Any]], method: str, template: str
) -> None:
    client, ids = admin
    failures = []
    for number in UNSTORABLE_NUMBERS:
        status, payload = _problems(
            client, method, template.format(**ids), data=f'{{"input": {{"n": [{number}]}}}}',
            headers={"Content-Type": "application/json"},
        )
        error = payload.get("error", {}) if isinstance(payload, dict) else {}
        if status != 400 or error.get("field") != "body" or "finite" not in error["message"]:
            failures.append((number, status, payload))
    assert failures == []


def test_a_run_whose_input_holds_infinity_is_refused_and_not_stored(
    admin: tuple[WebClient, dict[str, Any]], live: LiveServer
) -> None:
    client, ids = admin
    with live.app.app_context():
        before = db.session.query(Run).count()
    for number in UNSTORABLE_NUMBERS:
        answer = client.api("POST", "/api/f/lab/runs", data=(
            f'{{"script_id": {ids["script"]}, "input": {{"n": {number}}}, "wait": 5}}'
        ), headers={"Content-Type": "application/json"})
        assert answer.status_code == 400, answer.text
        assert number.lstrip("-") in answer.json()["error"]["message"]
    answer = client.api("POST", "/api/f/lab/runs",
                        json={"script_id": ids["script"], "input": {"n": 1e308}, "wait": 5})
    assert answer.status_code == 200 and answer.json()["input"] == {"n": 1e308}, answer.text
    with live.app.app_context():
        assert db.session.query(Run).count() == before + 1
        db.session.remove()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/f/lab/scripts/99999999999999999999"),
        ("PATCH", "/api/f/lab/scripts/99999999999999999999"),
        ("DELETE", "/api/tokens/99999999999999999999"),
        ("DELETE", "/api/f/lab/accounts/99999999999999999999"),
        ("GET", "/f/lab/editor/99999999999999999999"),
    ],
)
def test_an_id_too_large_for_the_database_is_not_found(
    admin: tuple[WebClient, dict[str, Any]], method: str, path: str
) -> None:
    client, _ids = admin
    response = client.api(method, path, json={})
    assert response.status_code == 404
    # 19 digits, past the largest 64-bit integer: refused by the converter's bound.
    nineteen = client.api(method, path.replace("99999999999999999999", "9" * 19), json={})
    assert nineteen.status_code in (404, 405)
