"""Hostile input across the whole HTTP surface (DESIGN §6): another facility's ids, text
no database can hold, whole numbers past the database's integers, cursors the server never
gave out, bodies that are not JSON objects. Every answer is a clear error (4xx, the API's
one error shape naming the field), never a 500, and leaks nothing of the other facility.

The routes come from the app's own url_map, so a route added later is swept too (and a
path parameter this file does not know fails the sweep until it is given a value).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from werkzeug.routing import Rule

from app import db
from app.models import (
    Account,
    ApiToken,
    ConnectLink,
    Grant,
    Integration,
    Invitation,
    Role,
    Run,
    Schedule,
    Script,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookTrigger,
)
from app.models._types import utcnow
from app.testing import LiveServer, WebClient, signed_in_session
from app.web.limits import BoundedInt
from app.web.security import require_member
from tests.conftest import add_member, create_facility, create_integration, create_user

CSRF = "sweep-csrf"
PAST_INTEGER = 2**31  # one past PostgreSQL's INTEGER (SQLite's integers go to 2**63 - 1)
# What must never be seen by a member of `lab`: the other facility's names and secrets.
OTHER_NAME = "Bobs Other Place"
OTHER_SCRIPT = "bobs-secret-script"
OTHER_SOURCE = "result = 'bobs-run-source'"
MASTER_KEY = "bobs-master-key-7f3a"
OWN_KEY = "bobs-own-key-19cc"


def cursor(position: Any) -> str:
    """A cursor as the lists encode them (base64url of the JSON position, unpadded)."""
    raw = json.dumps(position).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass
class World:
    """Facility `lab` (admin Ada, member Carl) and `other` (admin Bob) with one of every
    object a URL can name; `ours` and `theirs` fill the path parameters."""

    app: Flask
    ada: FlaskClient
    ada_id: int
    bob_id: int
    ours: dict[str, Any]
    theirs: dict[str, Any]
    secrets: list[str] = field(default_factory=list)


def signed_in(app: Flask, user_id: int) -> FlaskClient:
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie.update({**signed_in_session(app, user_id), "csrf": CSRF})
    return client


def made(response: Any) -> dict[str, Any]:
    assert response.status_code in (200, 201, 202), response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


@pytest.fixture
def world(app: Flask) -> World:
    session = db.session()
    lab = create_facility(session, slug="lab")
    other = create_facility(session, slug="other", name=OTHER_NAME)
    ada = create_user(session)
    carl = create_user(session, email="carl@example.com", name="Carl")
    bob = create_user(session, email="bob-the-other@example.com", name="Bob Otherton")
    add_member(session, user=ada, facility=lab, role=Role.admin)
    add_member(session, user=carl, facility=lab, role=Role.member)
    add_member(session, user=bob, facility=other, role=Role.admin)
    create_integration(session, facility=lab, key="keyed")
    create_integration(session, facility=other, key="theirs")
    session.commit()
    ada_id, carl_id, bob_id, lab_id, other_id = ada.id, carl.id, bob.id, lab.id, other.id

    # Bob makes his facility's objects the way a client does, through the API.
    bob_client = signed_in(app, bob_id)
    csrf = {"X-CSRF-Token": CSRF}

    def as_bob(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return made(bob_client.open(f"/api{path}", method=method, json=body, headers=csrf))

    script = as_bob("POST", "/f/other/scripts", {"name": OTHER_SCRIPT, "source": OTHER_SOURCE})
    as_bob("POST", "/f/other/integrations/theirs/master", {"fields": {"api_key": MASTER_KEY}})
    account = as_bob("POST", "/f/other/integrations/theirs/accounts",
                     {"fields": {"api_key": OWN_KEY}})
    token = as_bob("POST", "/tokens", {"name": "bobs token"})
    hook = as_bob("POST", "/f/other/webhooks",
                  {"url": "http://127.0.0.1:1/hook", "events": ["run.finished"]})
    ping = as_bob("POST", f"/f/other/webhooks/{hook['id']}/test")
    link = as_bob("POST", "/f/other/connect-links", {"integration": "theirs"})
    invitation = as_bob("POST", "/f/other/members", {"email": "dora@example.com"})
    theirs_integration = session.scalar(select(Integration).where(Integration.key == "theirs"))
    assert theirs_integration is not None
    run = Run(facility_id=other_id, user_id=bob_id, source=OTHER_SOURCE, status="succeeded")
    session.add(run)
    session.flush()
    grant = Grant(run_id=run.id, user_id=bob_id, facility_id=other_id,
                  integration_id=theirs_integration.id, expires_at=utcnow() + timedelta(hours=1))
    session.add(grant)
    # Bob's schedule of his script (made as a row: the API wants the script published).
    their_schedule = Schedule(facility_id=other_id, script_id=script["id"], created_by=bob_id,
                              cron="0 9 * * *", timezone="UTC", enabled=True,
                              next_run_at=utcnow() + timedelta(days=1))
    session.add(their_schedule)
    # Bob's webhook trigger (a row: the API wants the script published; no token has it).
    their_trigger = WebhookTrigger(facility_id=other_id, script_id=script["id"], owner_id=bob_id,
                                   name="bobs trigger", token_hash="b" * 64)
    session.add(their_trigger)
    # Lab's own objects, for the sweep of bad input on routes that reach them.
    lab_script = Script(facility_id=lab_id, name="Ours", source="result = 1", published=True)
    session.add(lab_script)
    session.flush()
    lab_run = Run(facility_id=lab_id, user_id=ada_id, source="result = 1", status="succeeded",
                  script_id=lab_script.id)
    session.add(lab_run)
    lab_schedule = Schedule(facility_id=lab_id, script_id=lab_script.id, created_by=ada_id,
                            cron="0 9 * * *", timezone="UTC", enabled=False)
    session.add(lab_schedule)
    lab_trigger = WebhookTrigger(facility_id=lab_id, script_id=lab_script.id, owner_id=ada_id,
                                 name="ours", token_hash="a" * 64)
    session.add(lab_trigger)
    session.commit()
    ada_client = signed_in(app, ada_id)
    made(ada_client.patch(f"/api/f/lab/scripts/{lab_script.id}",  # version 1
                          json={"source": "result = 2"}, headers=csrf))
    return World(
        app=app,
        ada=ada_client,
        ada_id=ada_id,
        bob_id=bob_id,
        ours={
            "slug": "lab", "script_id": lab_script.id, "number": 1, "run_id": lab_run.id,
            "grant_id": "0" * 32, "key": "keyed", "account_id": 1, "user_id": carl_id,
            "invitation_id": 1, "endpoint_id": 1, "token_id": 1, "token": "sbc_nope",
            "delivery_id": "0" * 32, "schedule_id": lab_schedule.id,
            "trigger_id": lab_trigger.id, "link_id": 1,
        },
        theirs={
            "slug": "lab", "script_id": script["id"], "number": 1, "run_id": run.id,
            "grant_id": grant.id, "key": "theirs", "account_id": account["id"],
            "user_id": bob_id, "invitation_id": invitation["id"], "endpoint_id": hook["id"],
            "token_id": token["id"], "token": "sbc_nope", "delivery_id": ping["id"],
            "schedule_id": their_schedule.id, "trigger_id": their_trigger.id,
            "link_id": link["id"],
        },
        secrets=[OTHER_NAME, OTHER_SCRIPT, "bobs-run-source", MASTER_KEY, OWN_KEY,
                 "bob-the-other@example.com", "Bob Otherton", "dora@example.com",
                 token["token"], hook["secret"], link["url"].rsplit("/", 1)[1]],
    )


# Routes the sweeps leave alone: static files, and the websocket (its own tests below).
SKIPPED = {"static", "__flask_sock.events"}


def routes(app: Flask) -> list[tuple[Rule, str]]:
    """Every (rule, method) of the app, deletions last (they would take objects that the
    other requests of a sweep still name)."""
    found = [
        (rule, method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in SKIPPED
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    ]
    return sorted(found, key=lambda pair: (pair[1] == "DELETE", pair[0].rule, pair[1]))


def fill(rule: Rule, values: dict[str, Any]) -> str:
    """The rule's path with `values` for its parameters (a parameter missing from `values`
    fails the test: a new route needs a value here)."""
    unknown = set(rule.arguments) - set(values)
    assert not unknown, f"{rule.rule}: give the sweep a value for {unknown}"
    path = rule.rule
    for name, value in values.items():
        for converter in ("", "int:"):
            path = path.replace(f"<{converter}{name}>", str(value))
    return path


@dataclass
class Sweep:
    """What a sweep found wrong, one line per request."""

    failures: list[str] = field(default_factory=list)

    def check(self, world: World, label: str, response: Any) -> None:
        """Record a server error, an API error off the one shape, or a leak."""
        text = response.get_data().decode("utf-8", "replace")
        if response.status_code >= 500:
            self.failures.append(f"{label}: {response.status_code} {text[:200]}")
            return
        leaked = [secret for secret in world.secrets if secret in text]
        if leaked:
            self.failures.append(f"{label}: leaks {leaked}")
        if response.status_code < 400 or not label.split()[1].startswith("/api/"):
            return
        body = response.get_json(silent=True)
        error = body.get("error") if isinstance(body, dict) else None
        if not (
            isinstance(error, dict)
            and isinstance(error.get("code"), str)
            and isinstance(error.get("message"), str)
            and error["message"]
        ):
            self.failures.append(f"{label}: {response.status_code} not the error shape: {text}")
        elif error["code"] == "invalid_input" and not error.get("field"):
            self.failures.append(f"{label}: names no field: {text}")


def send(client: FlaskClient, method: str, path: str, **kwargs: Any) -> Any:
    """One request with Ada's CSRF token, read whole and closed."""
    headers = {"X-CSRF-Token": CSRF, **kwargs.pop("headers", {})}
    response = client.open(path, method=method, headers=headers, **kwargs)
    response.get_data()
    response.close()
    # As a served request's would be: the test's app context outlives the request, and a
    # refused request's half-made objects would otherwise reach the next one's flush.
    db.session.remove()
    return response


# -- another facility's ids ----------------------------------------------------------------

# Every field any API body reads, so a route that took an id from the URL and acted on it
# would get far enough to do something.
ANY_BODY = {
    "name": "x", "source": "result = 1", "description": "", "published": True,
    "role": "admin", "email": "ada@example.com", "fields": {"api_key": "k"}, "label": "",
    "quota": 5, "integration": "keyed", "current_password": "x", "new_password": "y" * 12,
    "code": "c", "redirect_uri": "http://127.0.0.1:1/callback",
}


def test_another_facilitys_objects_are_not_found_through_ones_own(world: World) -> None:
    """Ada, admin of `lab`, names each of `other`'s objects under /f/lab/ (and the routes
    without a facility): every route answers 404, says nothing of them, changes nothing."""
    sweep = Sweep()
    seen = 0
    for rule, method in routes(world.app):
        if not set(rule.arguments) - {"slug"} or rule.endpoint == "connect.open_link":
            continue  # lists (swept below), and connect links (their token is the key)
        path = fill(rule, world.theirs)
        response = send(world.ada, method, path, json=ANY_BODY)
        seen += 1
        sweep.check(world, f"{method} {path}", response)
        if response.status_code != 404:
            sweep.failures.append(f"{method} {path}: {response.status_code}, not 404")
    assert sweep.failures == []
    assert seen >= 40  # the sweep reached the routes it is about
    # Nothing of `other` was lost or changed.
    session = db.session()
    session.expire_all()
    script = session.get(Script, world.theirs["script_id"])
    assert script is not None and script.name == OTHER_SCRIPT and script.source == OTHER_SOURCE
    theirs = session.scalar(select(Integration).where(Integration.key == "theirs"))
    assert theirs is not None and theirs.enabled
    assert session.scalar(select(func.count()).select_from(Account)) == 2
    assert session.get(Run, world.theirs["run_id"]) is not None
    grant = session.get(Grant, world.theirs["grant_id"])
    assert grant is not None and grant.state == "pending"
    hook = session.get(WebhookEndpoint, world.theirs["endpoint_id"])
    assert hook is not None and hook.active and hook.events == ["run.finished"]
    # No test, no redelivery made for it: its one delivery is Bob's test.
    assert session.scalars(
        select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == hook.id)
    ).all() == [world.theirs["delivery_id"]]
    schedule = session.get(Schedule, world.theirs["schedule_id"])
    assert schedule is not None and schedule.enabled and schedule.cron == "0 9 * * *"
    assert session.get(ApiToken, world.theirs["token_id"]) is not None
    assert session.get(Invitation, world.theirs["invitation_id"]) is not None
    assert session.scalar(select(func.count()).select_from(ConnectLink)) == 1
    bob = signed_in(world.app, world.bob_id)
    assert bob.get("/api/f/other/members").status_code == 200  # Bob is still an admin there


def test_a_list_filtered_by_another_facilitys_ids_is_empty(world: World) -> None:
    theirs = world.theirs
    for path in (
        f"/api/f/lab/runs?script_id={theirs['script_id']}",
        f"/api/f/lab/calls?user={world.bob_id}&script={theirs['script_id']}&integration=theirs",
        f"/f/lab/runs?script_id={theirs['script_id']}&user_id={world.bob_id}",
    ):
        response = world.ada.get(path)
        assert response.status_code == 200, path
        text = response.get_data(as_text=True)
        assert not [secret for secret in world.secrets if secret in text], path
        if path.startswith("/api/"):
            assert response.get_json() == []


# -- the sweep of bad input over every API route ----------------------------------------------


def _surrogate_body() -> bytes:
    # Every text field a lone surrogate; json.dumps writes it as the escape "\\ud800".
    return json.dumps({name: "a\ud800" for name in ANY_BODY}).encode()


# Bodies no API route may take: (label, request keywords).
BAD_BODIES: list[tuple[str, Callable[[Flask], dict[str, Any]]]] = [
    ("malformed JSON", lambda app: {"data": b'{"name": ', "content_type": "application/json"}),
    ("a JSON array", lambda app: {"json": [ANY_BODY]}),
    ("a JSON string", lambda app: {"json": "name"}),
    ("text/plain", lambda app: {"data": json.dumps(ANY_BODY), "content_type": "text/plain"}),
    ("a form", lambda app: {"data": {"name": "x", "source": "result = 1"}}),
    ("bytes that are not UTF-8", lambda app: {
        "data": b'{"name": "\xff\xfe"}', "content_type": "application/json"}),
    ("lone surrogates", lambda app: {
        "data": _surrogate_body(), "content_type": "application/json"}),
    ("NUL characters", lambda app: {"json": {name: "a\u0000" for name in ANY_BODY}}),
    ("whole numbers past the database's", lambda app: {"json": {
        "script_id": PAST_INTEGER, "user_id": PAST_INTEGER, "quota": PAST_INTEGER,
        "integration": "keyed", "url": "http://127.0.0.1:1/x", "events": ["run.finished"]}}),
    ("one byte over the limit", lambda app: {
        "data": b"{" + b" " * int(app.config["MAX_REQUEST_BYTES"]) + b"}",
        "content_type": "application/json"}),
]
# Query strings no list may choke on.
BAD_QUERIES = [
    "cursor=" + cursor(["2026-01-01T00:00:00", "a"]),  # a time without its offset
    "cursor=" + cursor(["9999-12-31T23:59:59-12:00", "a"]),  # past what UTC can hold
    "cursor=" + cursor(["0001-01-01T00:00:00+14:00", "a"]),
    "cursor=" + cursor(["2026-01-01T00:00:00+00:00", "a\u0000"]),
    "cursor=" + cursor(["a\ud800", 1]),
    "cursor=" + cursor([PAST_INTEGER]),
    "cursor=" + cursor([2**63]),
    "cursor=" + cursor(["Ours", -(2**70)]),
    "cursor=%ff%fe", "cursor=" + "A" * 300,
    "limit=x", f"limit={PAST_INTEGER}", "limit=-5",
    f"script_id={PAST_INTEGER}", f"user_id={PAST_INTEGER}", f"user={PAST_INTEGER}",
    f"script={PAST_INTEGER}", f"against={PAST_INTEGER}", "months=x", "months=0",
    f"page={10**20}", "since=2026-02-30", "until=x", "tz=../../etc/passwd", "v=x",
    "status=%00", "integration=%ED%A0%80",
]


def sweep_bad_input(world: World, only: set[str] | None = None) -> Sweep:
    """Every route of the app with every bad body (writes), every bad query (reads) and
    path parameters the database cannot hold; `only` narrows it to some endpoints."""
    app = world.app
    # A server error comes back as the 500 a client would get (not raised into the test).
    app.config["PROPAGATE_EXCEPTIONS"] = False
    sweep = Sweep()
    for rule, method in routes(app):
        if only is not None and rule.endpoint not in only:
            continue
        path = fill(rule, world.ours)
        if method in ("POST", "PUT", "PATCH") and rule.rule.startswith("/api/"):
            for label, body in BAD_BODIES:
                response = send(world.ada, method, path, **body(app))
                sweep.check(world, f"{method} {path} with {label}", response)
        if method == "GET":
            for query in BAD_QUERIES:
                response = send(world.ada, method, f"{path}?{query}")
                sweep.check(world, f"{method} {path}?{query}", response)
        for name in set(rule.arguments):
            whole = isinstance(rule._converters[name], BoundedInt)  # an <int:…> parameter
            hostile = PAST_INTEGER if whole else "a\u0000b"
            bad_path = fill(rule, {**world.ours, name: hostile})
            response = send(world.ada, method, bad_path, json={})
            sweep.check(world, f"{method} {bad_path}", response)
    return sweep


@pytest.mark.timeout(120)
def test_every_route_answers_bad_input_with_a_clear_error(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        sweep = sweep_bad_input(world)
    assert sweep.failures == []
    logged = caplog.text
    assert not [secret for secret in world.secrets if secret in logged]
    assert "Exception on" not in logged  # no failure that answered as something else


def test_the_sweep_reports_a_route_that_fails(world: World) -> None:
    """The sweep is able to fail: a list that raises is reported, with the request."""

    def broken(**_kwargs: Any) -> Any:
        raise RuntimeError("the list broke")

    world.app.view_functions["api_scripts.list_scripts"] = broken
    sweep = sweep_bad_input(world, only={"api_scripts.list_scripts"})
    # Each query reaches the view (all but the one with a NUL, refused before any view).
    assert len(sweep.failures) >= len(BAD_QUERIES) - 1, sweep.failures
    assert all(": 500 " in failure for failure in sweep.failures)


# -- each gap the sweep found, with the exact answer ------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "field_name"),
    [
        ("POST", "/api/f/lab/scripts", '{"name": "a\\ud800", "source": "result = 1"}', "name"),
        ("PATCH", "/api/f/lab/scripts/{script_id}", '{"source": "x = \\"\\udfff\\""}', "source"),
        ("POST", "/api/f/lab/runs", '{"source": "result = 1", "input": {"k": ["\\ud83d"]}}',
         "input"),
        ("PATCH", "/api/f/lab/integrations/keyed", '{"name": "K\\udc00"}', "name"),
        ("POST", "/api/tokens", '{"name": "\\uDBFF"}', "name"),
    ],
)
def test_a_lone_surrogate_is_a_400_naming_its_field_and_nothing_is_stored(
    world: World, method: str, path: str, body: str, field_name: str
) -> None:
    def counts() -> list[int | None]:
        return [db.session.scalar(select(func.count()).select_from(model))
                for model in (Script, Run, ApiToken)]

    before = counts()
    response = send(world.ada, method, path.format(**world.ours), data=body,
                    content_type="application/json")
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == ("invalid_input", field_name)
    assert "surrogate" in error["message"]
    assert counts() == before
    script = db.session.get(Script, world.ours["script_id"])
    assert script is not None and script.source == "result = 2"
    keyed = db.session.scalar(select(Integration).where(Integration.key == "keyed"))
    assert keyed is not None and keyed.name == "Keyed"


def test_a_surrogate_pair_is_one_character_and_welcome(world: World) -> None:
    response = send(world.ada, "POST", "/api/f/lab/scripts",
                    data='{"name": "Rocket \\ud83d\\ude80", "source": "result = 1"}',
                    content_type="application/json")
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["name"] == "Rocket \U0001f680"


@pytest.mark.parametrize(
    "position",
    [
        ["2026-01-01T00:00:00", "a"],  # no offset: every cursor given out has one
        ["9999-12-31T23:59:59-12:00", "a"],  # later than UTC can hold
        ["0001-01-01T00:00:00+14:00", "a"],  # earlier than UTC can hold
        ["2026-01-01T00:00:00+00:00", "a\u0000"],
        ["2026-01-01T00:00:00+00:00", "a\ud800"],
    ],
)
@pytest.mark.parametrize(
    "path", ["/api/f/lab/runs", "/api/f/lab/webhooks/{endpoint_id}/deliveries"]
)
def test_a_timed_cursor_the_list_never_gave_out_is_a_400(
    world: World, position: list[Any], path: str
) -> None:
    if "webhooks" in path:
        made(send(world.ada, "POST", "/api/f/lab/webhooks",
                  json={"url": "http://127.0.0.1:1/ours", "events": ["run.finished"]}))
        path = path.format(endpoint_id=2)  # Bob's is 1
    response = world.ada.get(f"{path}?cursor={cursor(position)}")
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["field"] == "cursor"
    assert "Next-Cursor" in error["message"]  # says what to send instead


@pytest.mark.parametrize("number", [PAST_INTEGER, 2**63, -(2**63) - 1])
@pytest.mark.parametrize("path", ["/api/f/lab/calls", "/api/f/lab/webhooks", "/api/f/lab/accounts"])
def test_a_numbered_cursor_past_the_databases_integers_is_a_400(
    world: World, number: int, path: str
) -> None:
    response = world.ada.get(f"{path}?cursor={cursor([number])}")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error"]["field"] == "cursor"


def test_a_cursor_given_out_still_pages(world: World) -> None:
    """The checks refuse what the server never wrote, not what it did."""
    session = db.session()
    for n in range(3):
        session.add(Run(facility_id=1, user_id=world.ada_id, source=f"result = {n}",
                        status="succeeded"))
    session.commit()
    seen: list[str] = []
    query = "limit=2"
    while True:
        page = world.ada.get(f"/api/f/lab/runs?{query}")
        assert page.status_code == 200, page.get_data(as_text=True)
        seen += [run["id"] for run in page.get_json()]
        if "Next-Cursor" not in page.headers:
            break
        query = f"limit=2&cursor={page.headers['Next-Cursor']}"
    assert len(seen) == len(set(seen)) == 4


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field_name"),
    [
        # Path ids: no such object (PostgreSQL's INTEGER ends at 2**31 - 1).
        ("GET", f"/api/f/lab/scripts/{PAST_INTEGER}", None, 404, None),
        ("DELETE", f"/api/tokens/{PAST_INTEGER}", None, 404, None),
        ("PATCH", f"/api/f/lab/members/{PAST_INTEGER}", {"role": "admin"}, 404, None),
        ("GET", f"/f/lab/editor/{PAST_INTEGER}", None, 404, None),
        # Query and body numbers: a 400 naming the field.
        ("GET", f"/api/f/lab/runs?script_id={PAST_INTEGER}", None, 400, "script_id"),
        ("GET", f"/api/f/lab/calls?user={PAST_INTEGER}", None, 400, "user"),
        ("GET", f"/api/f/lab/scripts/{{script_id}}/versions/1?against={PAST_INTEGER}", None, 400,
         "against"),
        ("POST", "/api/f/lab/runs", {"script_id": PAST_INTEGER}, 400, "script_id"),
        ("POST", "/api/f/lab/connect-links", {"integration": "keyed", "user_id": PAST_INTEGER},
         400, "user_id"),
        # The runs page's filters, which read the query themselves: said by the form.
        ("GET", f"/f/lab/runs?script_id={PAST_INTEGER}", None, 200, "Script takes"),
        ("GET", f"/f/lab/runs?user_id={10**20}", None, 200, "User takes"),
        ("GET", f"/f/lab/editor/{{script_id}}/versions?against={PAST_INTEGER}", None, 400,
         "against"),
    ],
)
def test_a_whole_number_past_the_databases_integers_is_refused_or_not_found(
    world: World, method: str, path: str, body: Any, status: int, field_name: str | None
) -> None:
    html = path.startswith("/f/")
    path = path.format(**world.ours)
    response = send(world.ada, method, path, json=body,
                    **({"headers": {"Accept": "text/html"}} if html else {}))
    assert response.status_code == status, response.get_data(as_text=True)
    if html:
        assert field_name is None or field_name in response.get_data(as_text=True)
    elif field_name is not None:
        assert response.get_json()["error"]["field"] == field_name


@pytest.mark.parametrize(
    ("method", "path", "field_name"),
    [
        ("GET", "/api/f/lab/runs/a%00b", "run_id"),
        ("POST", "/api/f/lab/grants/a%00b/refuse", "grant_id"),
        ("GET", "/api/f/lab/integrations/a%00b", "key"),
        ("GET", "/api/f/a%00b/scripts", "slug"),
        ("GET", "/f/lab/runs/a%00b", "run_id"),
        ("GET", "/f/lab/grants/a%00b/sign-in", "grant_id"),
    ],
)
def test_a_nul_in_a_path_segment_is_a_400_naming_it(
    world: World, method: str, path: str, field_name: str
) -> None:
    response = send(world.ada, method, path)
    assert response.status_code == 400, response.get_data(as_text=True)
    if path.startswith("/api/"):
        assert response.get_json()["error"]["field"] == field_name


# -- a server error still answers with the error page -------------------------------------------


def test_a_page_whose_statement_fails_still_answers_the_error_page(app: Flask) -> None:
    """A failed statement leaves a PostgreSQL transaction aborted; the 500 page, which reads
    who is signed in and their facilities, must not run its queries in it."""

    @app.get("/f/<slug>/fails")
    def fails(slug: str) -> str:
        require_member(slug)
        db.session.execute(text("SELECT * FROM no_such_table"))
        return "unreachable"

    app.config["PROPAGATE_EXCEPTIONS"] = False  # answered as a client would get it
    session = db.session()
    lab = create_facility(session, slug="lab")
    ada = create_user(session)
    add_member(session, user=ada, facility=lab, role=Role.member)
    session.commit()
    response = signed_in(app, ada.id).get("/f/lab/fails", headers={"Accept": "text/html"})
    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert 'class="card narrow error-page"' in page  # the app's own page, not a bare 500
    assert "no_such_table" not in page  # and no word of what failed inside
    assert "Sign out" in page  # it still knows who is signed in


# -- the websocket ------------------------------------------------------------------------------


@pytest.fixture
def page(live: LiveServer) -> Iterator[Any]:
    """An open page of Ada, a member of `lab`."""
    with live.app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        ada = create_user(session)
        add_member(session, user=ada, facility=lab, role=Role.member)
        session.commit()
        ada_id = ada.id
    socket = WebClient(live.app, live.url, ada_id).websocket("lab")
    hello = socket.next()
    assert hello is not None and hello["type"] == "hello"
    yield socket
    socket.close()


@pytest.mark.parametrize("grant_id", ["a\u0000b", "a\ud800b", 5, None, ["x"]])
def test_a_prompt_refusal_naming_no_storable_id_is_answered_and_the_page_goes_on(
    page: Any, grant_id: Any
) -> None:
    page.send({"type": "grant.refuse", "grant_id": grant_id})
    answer = page.next()
    assert answer == {"type": "error", "code": "not_found", "message": "no such prompt"}
    page.send({"type": "ping"})
    assert page.next() == {"type": "pong"}
