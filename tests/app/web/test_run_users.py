"""Who started a run, in the runs API: `user` ({"id", "name"}, never the email) on create,
get and list; a list names its runners in one query; no other facility's user is named."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from app import db
from app.models import Role, Run
from app.testing import SignedInClient as Browser
from tests.conftest import add_member, create_facility, create_user


@pytest.fixture
def lab(app: Flask) -> dict[str, Any]:
    """Facility `lab` (admin Ada, scripter Sam, members Mo and Kim) and facility `other`
    (admin Zed; Kim is a member there too), with one finished run of each person in each
    facility they belong to; their ids and the runs' ids by "<name>@<facility>"."""
    session = db.session()
    lab, other = create_facility(session, slug="lab"), create_facility(session, slug="other")
    people = {}
    for name, where in (
        ("Ada", {lab: Role.admin}),
        ("Sam", {lab: Role.scripter}),
        ("Mo", {lab: Role.member}),
        ("Kim", {lab: Role.member, other: Role.member}),
        ("Zed", {other: Role.admin}),
    ):
        user = create_user(session, email=f"{name.lower()}@example.com", name=name)
        for facility, role in where.items():
            add_member(session, user=user, facility=facility, role=role)
        people[name] = user
    runs = {}
    for name, user in people.items():
        for facility in (lab, other):
            if any(m.facility_id == facility.id for m in user.memberships):
                run = Run(facility_id=facility.id, user_id=user.id, source="result = 1",
                          status="succeeded", result=1)
                session.add(run)
                runs[f"{name}@{facility.slug}"] = run
    session.commit()
    return {"ids": {n: u.id for n, u in people.items()}, "runs": {k: r.id for k, r in runs.items()}}


def user_lookups(seen: list[str]) -> list[str]:
    """The statements that read users by id (the runners' names)."""
    return [s for s in seen if s.startswith("SELECT users.id, users.name FROM users")]


def test_a_started_run_names_who_started_it(app: Flask, lab: dict[str, Any]) -> None:
    sam = Browser(app, lab["ids"]["Sam"])
    expected = {"id": lab["ids"]["Sam"], "name": "Sam"}
    for body, status in (({"source": "result = 1", "wait": 30}, 200), ({"source": "x = 1"}, 201)):
        started = sam.call("POST", "/api/f/lab/runs", json=body)
        assert started.status_code == status, started.text
        assert started.json["user"] == expected
        assert "sam@example.com" not in started.text
        fetched = sam.call("GET", f"/api/f/lab/runs/{started.json['id']}")
        assert fetched.json["user"] == expected
    again = sam.call("POST", f"/api/f/lab/runs/{started.json['id']}/rerun")
    assert again.status_code in (200, 201), again.text
    assert again.json["user"] == expected


def test_an_admin_sees_each_runner_by_name_loaded_in_one_query(
    app: Flask, lab: dict[str, Any], statements: list[str]
) -> None:
    ada = Browser(app, lab["ids"]["Ada"])
    statements.clear()
    listed = ada.call("GET", "/api/f/lab/runs")
    assert listed.status_code == 200, listed.text
    runners = {run["id"]: run["user"] for run in listed.json}
    assert runners == {
        lab["runs"][f"{name}@lab"]: {"id": lab["ids"][name], "name": name}
        for name in ("Ada", "Sam", "Mo", "Kim")
    }
    assert "@example.com" not in listed.text
    assert len(user_lookups(statements)) == 1  # three other runners, one query
    statements.clear()
    one = ada.call("GET", f"/api/f/lab/runs/{lab['runs']['Mo@lab']}")
    assert one.json["user"] == {"id": lab["ids"]["Mo"], "name": "Mo"}
    assert len(user_lookups(statements)) == 1


def test_a_members_own_runs_name_them_without_a_query(
    app: Flask, lab: dict[str, Any], statements: list[str]
) -> None:
    """A member sees only their own runs (as before): their name came with the request."""
    mo = Browser(app, lab["ids"]["Mo"])
    statements.clear()
    listed = mo.call("GET", "/api/f/lab/runs")
    assert [(run["id"], run["user"]) for run in listed.json] == [
        (lab["runs"]["Mo@lab"], {"id": lab["ids"]["Mo"], "name": "Mo"})
    ]
    assert user_lookups(statements) == []
    assert mo.call("GET", f"/api/f/lab/runs/{lab['runs']['Kim@lab']}").status_code == 404


def test_no_other_facilitys_user_is_named(app: Flask, lab: dict[str, Any]) -> None:
    """Zed belongs only to `other`; Kim's run there is not `lab`'s either."""
    ada = Browser(app, lab["ids"]["Ada"])
    listed = ada.call("GET", "/api/f/lab/runs")
    assert lab["ids"]["Zed"] not in {run["user"]["id"] for run in listed.json}
    assert "Zed" not in listed.text
    assert lab["runs"]["Kim@other"] not in {run["id"] for run in listed.json}
    for theirs in ("Zed@other", "Kim@other"):
        answer = ada.call("GET", f"/api/f/lab/runs/{lab['runs'][theirs]}")
        assert answer.status_code == 404
        assert "Zed" not in answer.text and "Kim" not in answer.text
    assert ada.call("GET", "/api/f/other/runs").status_code == 404
    # Zed, admin of `other`, sees there Kim's run there and his own, named; nothing of lab.
    zed = Browser(app, lab["ids"]["Zed"])
    names = {run["id"]: run["user"]["name"] for run in zed.call("GET", "/api/f/other/runs").json}
    assert names == {lab["runs"]["Kim@other"]: "Kim", lab["runs"]["Zed@other"]: "Zed"}


def test_the_document_describes_the_runner(app: Flask) -> None:
    document: dict[str, Any] = app.test_client().get("/api/openapi.json").json
    schemas = document["components"]["schemas"]
    run = next(v for k, v in schemas.items() if k.startswith("RunOut"))
    assert "user" in run["required"]
    runner = schemas[run["properties"]["user"]["$ref"].rsplit("/", 1)[1]]
    assert runner["required"] == ["id", "name"]
    assert set(runner["properties"]) == {"id", "name"}  # never the email
