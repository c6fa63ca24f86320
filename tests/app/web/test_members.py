"""Members through the REST API on a live server: invite by exact email, consent, last admin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app import db
from app.models import Role, User
from app.services import invitations
from app.testing import LiveServer, WebClient
from tests.app.web.test_run_control import SPINS, build_world, close, start
from tests.conftest import add_member, create_facility, create_user
from tests.e2e.people import add_lab_member


@pytest.fixture
def lab(live: LiveServer) -> dict[str, Any]:
    """`lab` with one admin and one member; `other` with its own admin (another tenant)."""
    with live.app.app_context():
        session = db.session()
        lab, other = create_facility(session, slug="lab"), create_facility(session, slug="other")
        users = {}
        for email, facility, role in (
            ("admin@example.com", lab, Role.admin),
            ("member@example.com", lab, Role.member),
            ("stranger@example.com", other, Role.admin),
        ):
            user = create_user(session, email=email, name=email.split("@")[0].title())
            add_member(session, user=user, facility=facility, role=role)
            users[email.split("@")[0]] = user.id
        session.commit()
    return {name: WebClient(live.app, live.url, user_id) for name, user_id in users.items()} | {
        "ids": users
    }


def _emails(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(row["email"] for row in response.json())


def test_inviting_answers_alike_for_any_address_and_adds_nobody(lab: dict[str, Any]) -> None:
    admin = lab["admin"]
    answers = {}
    for email in ("stranger@example.com", "nobody-here@example.com"):
        response = admin.api("POST", "/api/f/lab/members", json={"email": email, "role": "admin"})
        assert response.status_code == 202, response.text
        answer = response.json()
        answers[email] = (
            sorted(answer),
            answer["role"],
            answer["message"].replace(email, "<email>"),
        )
    # Whether the address has an account on the server does not show in the answer ...
    assert answers["stranger@example.com"] == answers["nobody-here@example.com"]
    # ... and nobody joined: another tenant's admin is not pulled in without consent.
    assert _emails(admin.api("GET", "/api/f/lab/members")) == [
        "admin@example.com",
        "member@example.com",
    ]
    assert _emails(admin.api("GET", "/api/f/lab/invitations")) == [
        "nobody-here@example.com",
        "stranger@example.com",
    ]
    assert lab["stranger"].api("GET", "/api/f/lab/scripts").status_code == 404


def test_inviting_needs_an_exact_email(lab: dict[str, Any]) -> None:
    for email in ("stranger", "@example.com", "stranger@example", "a@b.c, d@e.f"):
        response = lab["admin"].api("POST", "/api/f/lab/members", json={"email": email})
        assert response.status_code == 400, email
        assert response.json()["error"]["field"] == "email"


def test_the_invited_user_joins_by_accepting_and_nobody_else_can(lab: dict[str, Any]) -> None:
    lab["admin"].api("POST", "/api/f/lab/members", json={"email": "Stranger@Example.com"})
    lab["admin"].api("POST", "/api/f/lab/members", json={"email": "other@example.com"})
    mine = lab["stranger"].api("GET", "/api/invitations").json()
    assert [(i["email"], i["role"], i["facility"]["slug"]) for i in mine] == [
        ("stranger@example.com", "member", "lab")
    ]
    invitation = mine[0]["id"]
    stolen = lab["member"].api("POST", f"/api/invitations/{invitation}/accept")
    assert stolen.status_code == 404
    accepted = lab["stranger"].api("POST", f"/api/invitations/{invitation}/accept")
    assert accepted.json() == {"facility": {"slug": "lab", "name": "The Lab"}, "role": "member"}
    assert lab["stranger"].api("GET", "/api/f/lab/scripts").status_code == 200
    assert "stranger@example.com" in _emails(lab["admin"].api("GET", "/api/f/lab/members"))
    assert lab["stranger"].api("GET", "/api/invitations").json() == []


def test_a_declined_invitation_is_gone(lab: dict[str, Any]) -> None:
    lab["admin"].api("POST", "/api/f/lab/members", json={"email": "stranger@example.com"})
    invitation = lab["stranger"].api("GET", "/api/invitations").json()[0]["id"]
    declined = lab["stranger"].api("POST", f"/api/invitations/{invitation}/decline")
    assert declined.status_code == 204
    assert lab["admin"].api("GET", "/api/f/lab/invitations").json() == []
    assert lab["stranger"].api("GET", "/api/f/lab/scripts").status_code == 404


def test_the_last_admin_can_be_neither_demoted_nor_removed(lab: dict[str, Any]) -> None:
    admin, ids = lab["admin"], lab["ids"]
    for method, body in (("PATCH", {"role": "scripter"}), ("DELETE", None)):
        response = admin.api(method, f"/api/f/lab/members/{ids['admin']}", json=body)
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert error["code"] == "conflict"
        assert "last admin" in error["message"] and "make another member admin" in error["message"]
    assert admin.api("GET", "/api/f/lab/members").json()[0]["role"] == "admin"
    # With a second admin the first may step down.
    promoted = admin.api("PATCH", f"/api/f/lab/members/{ids['member']}", json={"role": "admin"})
    assert promoted.json()["role"] == "admin"
    stepped = admin.api("PATCH", f"/api/f/lab/members/{ids['admin']}", json={"role": "member"})
    assert stepped.json()["role"] == "member"
    assert admin.api("GET", "/api/f/lab/members").status_code == 403


def test_an_admin_removes_a_member(lab: dict[str, Any]) -> None:
    removed = lab["admin"].api("DELETE", f"/api/f/lab/members/{lab['ids']['member']}")
    assert removed.status_code == 204
    # Removal ends the removed person's sessions (DESIGN §6): their browser is signed out.
    assert lab["member"].api("GET", "/api/f/lab/scripts").status_code == 401
    assert _emails(lab["admin"].api("GET", "/api/f/lab/members")) == ["admin@example.com"]
    again = lab["admin"].api("DELETE", f"/api/f/lab/members/{lab['ids']['member']}")
    assert again.status_code == 404


def test_another_tenants_admin_cannot_touch_lab_members(lab: dict[str, Any]) -> None:
    stranger, ids = lab["stranger"], lab["ids"]
    assert stranger.api("DELETE", f"/api/f/lab/members/{ids['member']}").status_code == 404
    assert stranger.api("DELETE", f"/api/f/other/members/{ids['member']}").status_code == 404
    changed = stranger.api("PATCH", f"/api/f/other/members/{ids['member']}", json={"role": "admin"})
    assert changed.status_code == 404
    assert lab["member"].api("GET", "/api/f/lab/scripts").status_code == 200


def test_unanswered_invitations_are_capped(
    lab: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(invitations, "MAX_PENDING_INVITATIONS", 2)
    admin = lab["admin"]
    for name in ("one", "two"):
        sent = admin.api("POST", "/api/f/lab/members", json={"email": f"{name}@example.com"})
        assert sent.status_code == 202
    again = admin.api(
        "POST", "/api/f/lab/members", json={"email": "two@example.com", "role": "admin"}
    )
    assert again.status_code == 202  # inviting again changes the role, adds nothing
    third = admin.api("POST", "/api/f/lab/members", json={"email": "three@example.com"})
    assert third.status_code == 409 and "withdraw some" in third.json()["error"]["message"]
    first = admin.api("GET", "/api/f/lab/invitations").json()[0]["id"]
    assert admin.api("DELETE", f"/api/f/lab/invitations/{first}").status_code == 204
    third = admin.api("POST", "/api/f/lab/members", json={"email": "three@example.com"})
    assert third.status_code == 202


def test_a_member_running_source_is_told_what_is_allowed(lab: dict[str, Any]) -> None:
    refused = lab["member"].api("POST", "/api/f/lab/runs", json={"source": "result = 1"})
    assert refused.status_code == 403
    assert (
        "members run the facility's published scripts by id" in refused.json()["error"]["message"]
    )


def test_inviting_a_pending_address_again_says_what_changed(lab: dict[str, Any]) -> None:
    """The role of a pending invitation used to change without a word."""
    admin = lab["admin"]

    def invite(email: str, role: str) -> str:
        answer = admin.api("POST", "/api/f/lab/members", json={"email": email, "role": role})
        assert answer.status_code == 202, answer.text
        assert answer.json()["role"] == role
        message: str = answer.json()["message"]
        return message

    assert invite("newbie@example.com", "scripter").startswith(
        "Invited newbie@example.com as scripter.")
    assert invite("  Newbie@Example.com ", "scripter").startswith(
        "newbie@example.com was already invited as scripter; the invitation stands.")
    assert invite("newbie@example.com", "member").startswith(
        "The invitation to newbie@example.com now says member (it said scripter).")
    pending = admin.api("GET", "/api/f/lab/invitations").json()
    assert [(row["email"], row["role"]) for row in pending] == [("newbie@example.com", "member")]


def test_an_admin_renames_the_facility_and_nobody_else_can(lab: dict[str, Any]) -> None:
    # There was no way to rename a facility after `scriptbox create-facility`.
    admin, member, stranger = lab["admin"], lab["member"], lab["stranger"]
    assert member.api("GET", "/api/f/lab").json() == {"slug": "lab", "name": "The Lab"}
    renamed = admin.api("PATCH", "/api/f/lab", json={"name": "  Lab Two  "})
    assert renamed.status_code == 200 and renamed.json() == {"slug": "lab", "name": "Lab Two"}
    assert "Management · Lab Two" in admin.http.get(f"{admin.base_url}/f/lab/manage").text
    assert member.api("PATCH", "/api/f/lab", json={"name": "Mine"}).status_code == 403
    assert stranger.api("PATCH", "/api/f/lab", json={"name": "Theirs"}).status_code == 404
    assert stranger.api("GET", "/api/f/lab").status_code == 404
    for name, words in (("   ", "give the facility a name"), ("x" * 121, "at most 120")):
        refused = admin.api("PATCH", "/api/f/lab", json={"name": name})
        assert refused.status_code == 400 and refused.json()["error"]["field"] == "name"
        assert words in refused.json()["error"]["message"]
    assert admin.api("GET", "/api/f/lab").json()["name"] == "Lab Two"


def test_removing_a_member_ends_their_runs_in_the_facility(tmp_path: Path, keyapi: str) -> None:
    # Removal ended the member's sessions, but not their runs: a running one went on, and
    # the queued ones started later, calling with the facility's accounts (its master
    # account too) for someone who no longer belonged to it.
    world = build_world(tmp_path, keyapi, MAX_RUNS_PER_USER=1)
    try:
        live: LiveServer = world["live"]
        boss_id = add_lab_member(live, email="boss@example.com", name="Boss", role=Role.admin)
        with live.app.app_context():
            sam_id = db.session.scalar(select(User.id).where(User.email == "sam@example.com"))
        admin = WebClient(live.app, live.url, boss_id)
        page = admin.websocket("lab")  # an admin's page hears every run of the facility
        page.wait_for("hello")
        running = start(world["sam"], SPINS)
        page.wait_for("run.output", run_id=running)
        queued = start(world["sam"], SPINS)
        theirs = start(world["sue"], SPINS)  # another member's run goes on
        page.wait_for("run.output", run_id=theirs)
        assert admin.api("DELETE", f"/api/f/lab/members/{sam_id}").status_code == 204
        for run_id in (running, queued):
            assert page.wait_for("run.finished", run_id=run_id)["run"]["status"] == "cancelled"
        assert admin.api("GET", f"/api/f/lab/runs/{theirs}").json()["status"] == "running"
        admin.api("POST", f"/api/f/lab/runs/{theirs}/cancel")
        page.wait_for("run.finished", run_id=theirs)
    finally:
        close(world)
