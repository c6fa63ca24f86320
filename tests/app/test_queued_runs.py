"""The cap on a user's queued runs (SCRIPTBOX_MAX_QUEUED_RUNS_PER_USER): a run past it is
refused in words (a 429 with Retry-After for the API), runs that started or ended do not
count, other users are not held back, and a schedule's due time past it is skipped,
saying so. Races across connections: tests/app/test_cap_races.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from app import db, extensions
from app.errors import TooManyQueuedRuns
from app.models import Facility, Role, Run, Schedule, User
from app.models._types import utcnow
from app.services import queued_runs, schedules
from app.services.context import MemberContext
from app.services.scripts import create_run, create_script
from app.testing import RoundTrips, signed_in_session
from tests.conftest import add_member, create_facility, create_user, make_app, stop_app, stored

CAP = 2


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[Flask]:
    """An app queueing at most CAP runs per user, whose beat never ticks; facility lab has
    Ada and Bob (scripters)."""
    app = make_app(tmp_path, MAX_QUEUED_RUNS_PER_USER=CAP, HEARTBEAT_S=3600)
    with app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        for email, name in (("ada@example.com", "Ada"), ("bob@example.com", "Bob")):
            user = create_user(session, email=email, name=name)
            add_member(session, user=user, facility=lab, role=Role.scripter)
        session.commit()
    db.session.remove()
    yield app
    stop_app(app)


def member(session: Any, email: str) -> MemberContext:
    user = session.scalars(select(User).where(User.email == email)).one()
    return MemberContext(user, session.scalars(select(Facility)).one(), Role.scripter)


def queue(app: Flask, email: str, count: int) -> list[str]:
    """`count` runs of the user, queued and handed to no queue (they stay queued)."""
    with app.app_context():
        session = db.session()
        runs = [
            create_run(
                session,
                member(session, email),
                script_id=None,
                source="result = 1",
                run_input=None,
                interactive=False,
                max_queued=CAP,
            )
            for _ in range(count)
        ]
        session.commit()
        ids = [run.id for run in runs]
    db.session.remove()
    return ids


def refused(app: Flask, email: str) -> TooManyQueuedRuns | None:
    """The refusal of one more run of the user, or None (then the run was made)."""
    try:
        queue(app, email, 1)
    except TooManyQueuedRuns as error:
        db.session.remove()
        return error
    return None


def run_count(app: Flask) -> int:
    with db.session_factory(app)() as fresh:
        return int(fresh.scalar(select(func.count(Run.id))) or 0)


def test_a_run_past_the_cap_is_refused_and_others_are_not_held_back(capped: Flask) -> None:
    first, _second = queue(capped, "ada@example.com", CAP)
    error = refused(capped, "ada@example.com")
    assert error is not None and (error.queued, error.limit) == (CAP, CAP)
    assert error.message.startswith(f"You have {CAP} runs waiting to start")
    assert "cancel some on the Runs page" in error.message
    assert run_count(capped) == CAP  # nothing inserted
    assert refused(capped, "bob@example.com") is None  # Bob's queue is his own
    # A run that left `queued` no longer counts: Ada may queue one more.
    assert extensions.lifecycle(capped).cancel_idle(first)
    assert refused(capped, "ada@example.com") is None
    assert refused(capped, "ada@example.com") is not None


def test_the_api_answers_429_with_retry_after_and_words(capped: Flask) -> None:
    queue(capped, "ada@example.com", CAP)
    with capped.app_context():
        ada = db.session.scalars(select(User).where(User.email == "ada@example.com")).one()
        values = signed_in_session(capped, ada.id)
    db.session.remove()
    client = capped.test_client()
    with client.session_transaction() as cookie:
        cookie.update(values)
    headers = {"X-CSRF-Token": values["csrf"], "Idempotency-Key": "nightly-1"}
    answer = client.post("/api/f/lab/runs", json={"source": "result = 1"}, headers=headers)
    assert answer.status_code == 429, answer.get_data(as_text=True)
    assert answer.headers["Retry-After"] == str(queued_runs.RETRY_AFTER_S)
    error = answer.json["error"]
    assert error["code"] == "too_many_queued_runs"
    assert error["message"].startswith(f"You have {CAP} runs waiting to start")
    assert (error["queued"], error["limit"]) == (CAP, CAP)
    assert run_count(capped) == CAP
    # The refused key was not kept: once there is room, the same retry starts its run.
    with capped.app_context():
        waiting = db.session.scalars(select(Run.id)).first()
    db.session.remove()
    assert extensions.lifecycle(capped).cancel_idle(str(waiting))
    again = client.post("/api/f/lab/runs", json={"source": "result = 1"}, headers=headers)
    assert again.status_code in (200, 201), again.get_data(as_text=True)
    assert run_count(capped) == CAP + 1


def test_the_cap_costs_the_insert_no_statement_of_its_own(capped: Flask) -> None:
    with RoundTrips(db.engine_of(capped)) as counted:
        queue(capped, "ada@example.com", 1)
    inserts = [s for s in counted.statements if s.startswith("INSERT INTO runs")]
    assert len(inserts) == 1
    assert not [s for s in counted.statements if s.startswith("SELECT") and "runs" in s]


def test_a_due_time_past_the_cap_is_skipped_saying_why(capped: Flask) -> None:
    now = utcnow().replace(second=0, microsecond=0)
    with capped.app_context():
        session = db.session()
        ada = member(session, "ada@example.com")
        script = create_script(session, ada, name="R", source="result = 1", published=True)
        schedule = schedules.create_schedule(
            session, ada, script, cron="* * * * *", now=now - timedelta(minutes=2)
        )
        session.commit()
        schedule_id = schedule.id
    db.session.remove()
    queue(capped, "ada@example.com", CAP)  # her API runs fill her queue
    # The app's own firer: its cap is the configured one.
    assert extensions.schedule_firer(capped).fire_due() == 0
    found = stored(capped, Schedule, schedule_id)
    assert found.last_skip == "too_many_queued"
    assert found.last_due_at is not None and found.last_run_id is None
    assert (found.last_skip_message or "").startswith(f"Ada has {CAP} runs waiting to start")
    assert "cancel some on the Runs page" in (found.last_skip_message or "")
    assert run_count(capped) == CAP
