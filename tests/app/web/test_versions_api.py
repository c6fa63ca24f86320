"""Versions, publishing a chosen version, declared inputs and re-runs through the JSON API
(issue 11, items 2, 3 and 5): members run the published version while scripters edit a draft."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import db
from app.models import Role, Run, Script, User
from tests.app.web.test_access import CSRF, client_for
from tests.conftest import add_member, create_facility, create_user

INPUTS = [
    {"name": "who", "type": "text", "required": True},
    {"name": "times", "type": "number", "default": 1},
]


@pytest.fixture
def clients(app: Flask) -> dict[str, FlaskClient]:
    session = db.session()
    lab = create_facility(session, slug="lab")
    result = {}
    for role in (Role.scripter, Role.member):
        user = create_user(session, email=f"{role.value}@example.com", name=role.value.title())
        add_member(session, user=user, facility=lab, role=role)
        session.flush()
        result[role.value] = user.id
    session.commit()
    return {name: client_for(app, user_id) for name, user_id in result.items()}


def call(client: FlaskClient, method: str, path: str, body: Any = None) -> Any:
    response = client.open(
        f"/api/f/lab{path}", method=method, json=body, headers={"X-CSRF-Token": CSRF}
    )
    return response.status_code, response.get_json()


def test_members_run_the_published_version_while_the_draft_moves_on(
    clients: dict[str, FlaskClient],
) -> None:
    scripter, member = clients["scripter"], clients["member"]
    status, script = call(scripter, "POST", "/scripts",
                          {"name": "Greeter", "source": "result = 'A'", "inputs": INPUTS})
    assert status == 201 and script["inputs"][0]["name"] == "who"
    sid = script["id"]
    call(scripter, "PATCH", f"/scripts/{sid}", {"source": "result = 'B'"})
    call(scripter, "PATCH", f"/scripts/{sid}", {"source": "result = 'B'", "name": "Greeter!"})
    status, published = call(scripter, "PATCH", f"/scripts/{sid}", {"published": True})
    assert published["published_version"] == 2
    call(scripter, "PATCH", f"/scripts/{sid}", {"source": "result = 'C'"})

    status, rows = call(scripter, "GET", f"/scripts/{sid}/versions")
    assert [(v["number"], v["published"], v["created_by"]) for v in rows] == [
        (3, False, "Scripter"), (2, True, "Scripter"), (1, False, "Scripter")]

    status, run = call(member, "POST", "/runs", {"script_id": sid, "input": {"who": "Ada"}})
    assert status == 201 and run["version"] == 2
    assert run["input"] == {"who": "Ada", "times": 1}
    ran = db.session.get(Run, run["id"])
    assert ran is not None and ran.source == "result = 'B'"

    status, _ = call(scripter, "POST", f"/scripts/{sid}/versions/1/publish")
    assert status == 200
    status, run = call(member, "POST", "/runs", {"script_id": sid, "input": {"who": "Bo"}})
    assert run["version"] == 1

    status, detail = call(scripter, "GET", f"/scripts/{sid}/versions/3?against=1")
    assert detail["against"] == 1
    assert [(d["kind"], d["text"]) for d in detail["diff"] if d["kind"] != "hunk"] == [
        ("remove", "-result = 'A'"), ("add", "+result = 'C'")]

    status, restored = call(scripter, "POST", f"/scripts/{sid}/versions/1/restore")
    assert restored["number"] == 4 and restored["source"] == "result = 'A'"
    status, draft = call(scripter, "GET", f"/scripts/{sid}")
    assert draft["source"] == "result = 'A'" and draft["published_version"] == 1

    assert call(member, "GET", f"/scripts/{sid}/versions")[0] == 403
    assert call(member, "POST", f"/scripts/{sid}/versions/4/publish")[0] == 403


def test_run_input_is_checked_against_the_declaration(clients: dict[str, FlaskClient]) -> None:
    scripter, member = clients["scripter"], clients["member"]
    _, script = call(scripter, "POST", "/scripts", {"name": "Greeter", "source": "result = 1",
                                                    "inputs": INPUTS, "published": True})
    status, error = call(member, "POST", "/runs", {"script_id": script["id"], "input": {}})
    assert status == 400
    assert error["error"] == {"code": "invalid_input", "message": "who is required",
                              "field": "input.who"}
    status, error = call(member, "POST", "/runs",
                         {"script_id": script["id"], "input": {"who": "A", "times": "x"}})
    assert error["error"]["field"] == "input.times"
    status, error = call(scripter, "PATCH", f"/scripts/{script['id']}",
                         {"inputs": [{"name": "bad name", "type": "text"}]})
    assert status == 400 and error["error"]["field"] == "inputs"


def test_the_editors_run_uses_its_unsaved_input_declarations(
    clients: dict[str, FlaskClient],
) -> None:
    # The draft's declarations were ignored until saved: no check, no defaults, and the
    # script failed with KeyError where the saved one said "who is required".
    scripter, member = clients["scripter"], clients["member"]
    source = "result = input['who'] * int(input['times'])"
    draft = {"source": source, "inputs": INPUTS, "wait": 30}
    _, saved = call(scripter, "POST", "/scripts", {"name": "Bare", "source": "result = 1"})
    for where in ({}, {"script_id": saved["id"]}):  # a new script's, and a saved one's draft
        status, error = call(scripter, "POST", "/runs", {**draft, **where, "input": {}})
        assert (status, error["error"]["field"]) == (400, "input.who"), error
        status, ran = call(scripter, "POST", "/runs", {**draft, **where, "input": {"who": "ab"}})
        assert (status, ran["result"]) == (200, "ab"), ran  # times: its default, 1
    status, error = call(scripter, "POST", "/runs", {
        "source": source, "inputs": [{"name": "bad name", "type": "text"}]})
    assert (status, error["error"]["field"]) == (400, "inputs")
    _, published = call(scripter, "POST", "/scripts", {"name": "Pub", "source": "result = 1",
                                                       "published": True})
    for who in (scripter, member):  # a member cannot loosen a published script's checks
        status, error = call(who, "POST", "/runs", {"script_id": published["id"], "inputs": []})
        assert (status, error["error"]["field"]) == (400, "inputs")  # only beside source
    assert "inputs go with source" in error["error"]["message"]


def test_duplicate_and_rerun(clients: dict[str, FlaskClient]) -> None:
    scripter = clients["scripter"]
    _, script = call(scripter, "POST", "/scripts",
                     {"name": "Greeter", "source": "result = input", "inputs": INPUTS,
                      "published": True})
    status, copy = call(scripter, "POST", f"/scripts/{script['id']}/duplicate")
    assert status == 201 and copy["name"] == "Greeter (copy)"
    _, fetched = call(scripter, "GET", f"/scripts/{copy['id']}")
    assert fetched["published"] is False and fetched["inputs"][0]["name"] == "who"
    assert fetched["source"] == "result = input"

    _, first = call(scripter, "POST", "/runs",
                    {"script_id": script["id"], "input": {"who": "Ada", "times": 3}})
    status, again = call(scripter, "POST", f"/runs/{first['id']}/rerun")
    assert status in (200, 201) and again["id"] != first["id"]
    assert again["input"] == {"who": "Ada", "times": 3} and again["script_id"] == script["id"]
    assert db.session.get(Script, copy["id"]) is not None


def test_run_again_of_an_editor_draft_runs_the_draft(clients: dict[str, FlaskClient]) -> None:
    """The editor runs a saved script's draft: Run again runs that draft again, as it
    does unsaved source (it ran the published version instead)."""
    scripter = clients["scripter"]
    _, script = call(scripter, "POST", "/scripts",
                     {"name": "Greeter", "source": "result = 'published'", "published": True})
    _, draft = call(scripter, "POST", "/runs",
                    {"script_id": script["id"], "source": "result = 'draft'", "wait": 30})
    assert (draft["result"], draft["version"]) == ("draft", None), draft
    status, again = call(scripter, "POST", f"/runs/{draft['id']}/rerun")
    assert status in (200, 201) and again["script_id"] == script["id"], again
    assert db.session.get(Run, again["id"]).source == "result = 'draft'"  # type: ignore[union-attr]
    # A run of the published version still runs the script as members run it now.
    _, published = call(scripter, "POST", "/runs", {"script_id": script["id"], "wait": 30})
    assert published["result"] == "published" and published["version"] == 1, published
    _, rerun = call(scripter, "POST", f"/runs/{published['id']}/rerun")
    assert db.session.get(Run, rerun["id"]).version == 1  # type: ignore[union-attr]


def test_a_run_of_a_deleted_script_is_not_called_an_editor_run(
    clients: dict[str, FlaskClient],
) -> None:
    """Deleting a script keeps its runs (their script_id becomes NULL): a member's run of
    its published version says the script was deleted, an editor draft run stays one."""
    scripter, member = clients["scripter"], clients["member"]
    status, script = call(scripter, "POST", "/scripts",
                          {"name": "Greeter", "source": "result = 1", "published": True})
    assert status == 201 and script["published_version"] == 1
    session = db.session()
    member_id = session.scalar(select(User.id).where(User.email == "member@example.com"))
    facility_id = session.get(Script, script["id"]).facility_id  # type: ignore[union-attr]
    published_run = Run(facility_id=facility_id, script_id=script["id"], version=1,
                        user_id=member_id, source="result = 1", input={}, status="succeeded")
    draft_run = Run(facility_id=facility_id, script_id=None, version=None,
                    user_id=member_id, source="result = 2", input={}, status="succeeded")
    session.add_all([published_run, draft_run])
    session.commit()
    assert call(scripter, "DELETE", f"/scripts/{script['id']}")[0] == 204

    page = member.get(f"/f/lab/runs/{published_run.id}").get_data(as_text=True)
    assert "Deleted script" in page and "Editor run" not in page
    assert "Editor run" in member.get(f"/f/lab/runs/{draft_run.id}").get_data(as_text=True)
    listing = member.get("/f/lab/runs").get_data(as_text=True)
    assert listing.count("Deleted script") == 1 and listing.count("Editor run") == 1


def test_a_version_that_does_not_compile_cannot_be_published(
    clients: dict[str, FlaskClient],
) -> None:
    # It was published, and every member's run of it failed "The script failed".
    scripter, member = clients["scripter"], clients["member"]
    status, script = call(scripter, "POST", "/scripts", {"name": "Fine", "source": "result = 1",
                                                         "published": True})
    assert status == 201 and script["published_version"] == 1
    sid = script["id"]
    status, _ = call(scripter, "PATCH", f"/scripts/{sid}", {"source": "x = (\nresult = 2"})
    assert status == 200  # a broken draft may be saved: members still run version 1

    for method, path, body in (
        ("PATCH", f"/scripts/{sid}", {"published": True}),
        ("POST", f"/scripts/{sid}/versions/2/publish", None),
    ):
        status, refused = call(scripter, method, path, body)
        assert status == 400, refused
        error = refused["error"]
        assert (error["field"], error["line"]) == ("source", 1)
        assert error["message"].startswith("version 2 does not compile (line 1: SyntaxError")
        assert "fix it, save, then publish" in error["message"]
    status, fine = call(member, "POST", "/runs", {"script_id": sid, "wait": 30})
    assert (fine["version"], fine["result"]) == (1, 1)

    status, made = call(scripter, "POST", "/scripts", {
        "name": "New", "source": "result = 1\nresult = ().__class__", "published": True})
    assert status == 400 and (made["error"]["field"], made["error"]["line"]) == ("source", 2)
    assert '"__class__" is an invalid attribute name' in made["error"]["message"]
    db.session.remove()  # as the request's end does (here the test's app context stays)
    assert db.session.scalars(select(Script.name)).all() == ["Fine"]  # nothing half-made


def test_a_save_begun_from_an_older_version_is_refused_not_written_over_the_newer(
    clients: dict[str, FlaskClient],
) -> None:
    # Two tabs (or two scripters) on one script: the second save overwrote the first's
    # draft unseen. A save that names the version it started from is refused once another
    # was saved since; one that does not name it (an API client of before) still saves.
    scripter = clients["scripter"]
    status, script = call(scripter, "POST", "/scripts", {"name": "Two tabs", "source": "a = 1"})
    assert (status, script["version"]) == (201, 1)
    sid = script["id"]
    status, first = call(scripter, "PATCH", f"/scripts/{sid}",
                         {"source": "a = 2", "base_version": 1})
    assert (status, first["version"]) == (200, 2)
    status, refused = call(scripter, "PATCH", f"/scripts/{sid}",
                           {"source": "a = 3", "published": True, "base_version": 1})
    assert status == 409
    assert refused["error"]["code"] == "edit_conflict"
    assert refused["error"]["version"] == 2 and refused["error"]["field"] == "base_version"
    assert "v2 was saved after the version this edit started from" in refused["error"]["message"]
    script_row = db.session.get(Script, sid)
    assert script_row is not None
    db.session.refresh(script_row)
    assert (script_row.source, script_row.published) == ("a = 2", False)
    status, kept = call(scripter, "PATCH", f"/scripts/{sid}", {"source": "a = 3"})
    assert (status, kept["version"]) == (200, 3)
    status, shown = call(scripter, "GET", f"/scripts/{sid}")
    assert shown["version"] == 3 and shown["source"] == "a = 3"
