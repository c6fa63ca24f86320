"""Deleting a run (DELETE /api/f/<slug>/runs/<id>): an ended run goes with its input,
output, result and prompts; its calls stay in the usage, and its idempotency key stays,
pointing at no run (a retry under it is told the run was deleted). Members delete
their own, admins anyone's; a run that goes on is a 409; someone else's run or another
facility's is a 404, as a run that does not exist."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from app import db
from app.models import CallLog, Grant, IdempotencyKey, Role, Run
from app.models._types import utcnow
from app.services import usage
from app.testing import SignedInClient
from tests.conftest import add_member, create_facility, create_integration, create_user


class Member(SignedInClient):
    """One member's signed-in test client, with the calls on runs this module makes."""

    def delete(self, run_id: str, slug: str = "lab") -> Any:
        return self.call("DELETE", f"/api/f/{slug}/runs/{run_id}")

    def get(self, run_id: str) -> Any:
        return self.call("GET", f"/api/f/lab/runs/{run_id}")


@pytest.fixture
def lab(app: Flask) -> dict[str, Any]:
    """Lab with admin Ada and members Sam and Sue, each with runs; Elsewhere with one."""
    session = db.session()
    lab, elsewhere = create_facility(session), create_facility(session, slug="elsewhere",
                                                                 name="Elsewhere")
    people = {}
    for name, role in (("ada", Role.admin), ("sam", Role.member), ("sue", Role.member)):
        people[name] = create_user(session, email=f"{name}@example.com", name=name.title())
        add_member(session, user=people[name], facility=lab, role=role)
    add_member(session, user=people["ada"], facility=elsewhere, role=Role.admin)
    demo = create_integration(session, facility=lab)
    runs = {}
    for name, facility, owner, status in (
        ("sams", lab, "sam", "succeeded"),
        ("sues", lab, "sue", "failed"),
        ("sams_queued", lab, "sam", "queued"),
        ("sams_running", lab, "sam", "running"),
        ("elsewhere", elsewhere, "ada", "succeeded"),
    ):
        runs[name] = Run(facility_id=facility.id, user_id=people[owner].id, source="x = 1",
                         status=status, output="private output", result={"secret": 1})
        session.add(runs[name])
    session.flush()
    sams = runs["sams"]
    session.add(Grant(run_id=sams.id, user_id=people["sam"].id, facility_id=lab.id,
                      integration_id=demo.id, state="granted", expires_at=utcnow()))
    session.add(IdempotencyKey(user_id=people["sam"].id, facility_id=lab.id, key="k1",
                               request_hash="0" * 64, run_id=sams.id))
    session.add(CallLog(run_id=sams.id, facility_id=lab.id, integration_key="demo",
                        method="GET", path="/me", status=200))
    session.commit()
    members = {name: Member(app, user.id) for name, user in people.items()}
    return {"runs": {name: run.id for name, run in runs.items()}, **members, "facility": lab}


def count(model: Any, *where: Any) -> int:
    db.session.expire_all()
    return int(db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_a_member_deletes_their_ended_run_and_its_calls_still_count(lab: dict[str, Any]) -> None:
    sam, run_id = lab["sam"], lab["runs"]["sams"]
    assert sam.get(run_id).status_code == 200

    answer = sam.delete(run_id)

    assert answer.status_code == 204, answer.text
    gone = sam.get(run_id)
    assert gone.status_code == 404
    assert "private output" not in gone.text
    assert count(Run, Run.id == run_id) == 0
    assert count(Grant, Grant.run_id == run_id) == 0
    assert count(IdempotencyKey, IdempotencyKey.run_id == run_id) == 0
    assert count(IdempotencyKey, IdempotencyKey.key == "k1", IdempotencyKey.run_id.is_(None)) == 1
    assert count(CallLog, CallLog.run_id == run_id) == 1
    assert usage.monthly_usage(db.session, lab["facility"])["total"] == 1
    assert sam.delete(run_id).status_code == 404  # twice: already gone


def test_a_member_cannot_delete_anothers_run_and_an_admin_can(lab: dict[str, Any]) -> None:
    sues = lab["runs"]["sues"]
    refused = lab["sam"].delete(sues)
    assert refused.status_code == 404  # not told apart from a run that does not exist
    assert count(Run, Run.id == sues) == 1
    assert lab["ada"].delete(sues).status_code == 204
    assert count(Run, Run.id == sues) == 0


@pytest.mark.parametrize("name", ["sams_queued", "sams_running"])
def test_a_run_that_goes_on_is_not_deleted(lab: dict[str, Any], name: str) -> None:
    run_id = lab["runs"][name]
    answer = lab["sam"].delete(run_id)
    assert answer.status_code == 409
    assert answer.json["error"]["message"] == (
        "the run has not ended: stop it first, then delete it"
    )
    assert count(Run, Run.id == run_id) == 1


def test_another_facilitys_run_is_not_found_in_this_one(lab: dict[str, Any]) -> None:
    elsewhere = lab["runs"]["elsewhere"]
    assert lab["ada"].delete(elsewhere, slug="lab").status_code == 404
    assert lab["sam"].delete(elsewhere, slug="elsewhere").status_code == 404  # not a member there
    assert count(Run, Run.id == elsewhere) == 1


def test_without_the_csrf_header_nothing_is_deleted(lab: dict[str, Any]) -> None:
    run_id = lab["runs"]["sams"]
    answer = lab["sam"].client.delete(f"/api/f/lab/runs/{run_id}")
    assert answer.status_code in (400, 403)
    assert count(Run, Run.id == run_id) == 1


def test_the_run_page_tells_calls_that_sent_no_request_from_none_at_all(
    lab: dict[str, Any]
) -> None:
    """`calls` counts every integration call, `integrations.require` too; the page's list
    holds the requests sent. A run whose calls sent none says so, not "no calls"."""
    db.session.execute(update(Run).where(Run.id == lab["runs"]["sues"]).values(calls=1))
    db.session.commit()
    required_only = lab["sue"].call("GET", f"/f/lab/runs/{lab['runs']['sues']}").text
    assert "This run sent no request to a service: its 1 integration call" in required_only
    assert "made no integration calls" not in required_only
    none_at_all = lab["sam"].call("GET", f"/f/lab/runs/{lab['runs']['sams_queued']}").text
    assert "This run made no integration calls yet." in none_at_all
