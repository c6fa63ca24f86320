"""Deleting a script: its calls stay in the call log and the usage, no longer naming it,
so a script made after it, which SQLite may give the same id, is not credited with them."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from app import db
from app.models import CallLog, Role, Script
from app.services import usage
from app.testing import SignedInClient
from tests.conftest import add_member, create_facility, create_user


def test_a_deleted_scripts_calls_are_not_credited_to_the_next_script(app: Flask) -> None:
    session = db.session()
    lab = create_facility(session)
    ada = create_user(session, email="ada@example.com", name="Ada")
    add_member(session, user=ada, facility=lab, role=Role.admin)
    old = Script(facility_id=lab.id, name="Old", source="result = 1")
    session.add(old)
    session.flush()
    session.add(CallLog(facility_id=lab.id, script_id=old.id, integration_key="demo",
                        method="GET", path="/me", status=200))
    session.commit()
    admin = SignedInClient(app, ada.id)

    assert admin.call("DELETE", f"/api/f/lab/scripts/{old.id}").status_code == 204
    made = admin.call("POST", "/api/f/lab/scripts", json={"name": "New", "source": "x = 1"})
    assert made.status_code == 201, made.get_json()
    new_id = made.get_json()["id"]

    listed = admin.call("GET", "/api/f/lab/calls", query_string={"script": new_id})
    assert listed.status_code == 200 and listed.get_json() == []
    db.session.expire_all()
    [call] = db.session.scalars(select(CallLog)).all()
    assert call.script_id is None and call.path == "/me"  # kept, naming no script
    assert usage.monthly_usage(db.session, lab)["total"] == 1
