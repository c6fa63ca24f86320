"""Two admins demoting each other at once on PostgreSQL: one of them stays admin."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app import db
from app.errors import Conflict
from app.models import Facility, Membership, Role, User
from app.services import people
from tests.conftest import add_member, create_facility, create_user, make_app


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test (skipped unless the server is configured)."""
    base = os.environ.get("SCRIPTBOX_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("set SCRIPTBOX_TEST_POSTGRES_URL to run against PostgreSQL")
    name = f"scriptbox_test_{secrets.token_hex(4)}"
    plain = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield base.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    tmp_path: Path, postgres_url: str
) -> None:
    app = make_app(tmp_path, DATABASE_URL=postgres_url)
    with app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        ada = create_user(session, email="ada@example.com")
        bob = create_user(session, email="bob@example.com")
        for user in (ada, bob):
            add_member(session, user=user, facility=lab, role=Role.admin)
        session.commit()
        ids = (lab.id, ada.id, bob.id)
        db.session.remove()
    factory = db.session_factory(app)
    first, second, watcher = factory(), factory(), factory()
    facility_id, ada_id, bob_id = ids

    def demote(session: Session, user_id: int) -> None:
        user, facility = session.get(User, user_id), session.get(Facility, facility_id)
        assert user is not None and facility is not None
        people.set_membership(session, user=user, facility=facility, role=Role.member)

    outcome: dict[str, str] = {}

    def bob_steps_down() -> None:
        try:
            demote(second, bob_id)
            second.commit()
            outcome["bob"] = "demoted"
        except Conflict as refused:
            second.rollback()
            outcome["bob"] = refused.message

    try:
        demote(first, ada_id)  # Ada steps down; her transaction is still open
        second_pid = second.connection().exec_driver_sql("select pg_backend_pid()").scalar()
        thread = threading.Thread(target=bob_steps_down)
        thread.start()
        # Wait until Bob's check is blocked behind Ada's open transaction (or has finished,
        # which only happens if nothing serialises the two checks).
        while thread.is_alive():
            waiting = watcher.execute(
                text("select wait_event_type from pg_stat_activity where pid = :pid"),
                {"pid": second_pid},
            ).scalar()
            watcher.rollback()  # a fresh snapshot of pg_stat_activity next time
            if waiting == "Lock":
                break
            thread.join(0.01)
        first.commit()
        thread.join()
        admins = watcher.scalar(
            select(func.count(Membership.id)).where(
                Membership.facility_id == facility_id, Membership.role == Role.admin
            )
        )
        assert admins == 1
        assert "last admin" in outcome["bob"]
    finally:
        for session in (first, second, watcher):
            session.close()
        executor = app.extensions.get("sandbox")
        if executor is not None:
            executor.close()
        db.session.remove()
        app.extensions["db_engine"].dispose()
