"""Two creates at once against a cap (schedules per script, webhook endpoints per
facility, a user's queued runs): the second waits for the first's transaction and then
counts it, so the cap holds exactly, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import db, extensions
from app.errors import Conflict, TooManyQueuedRuns
from app.models import Facility, Role, Run, Schedule, Script, User
from app.models.webhooks import WebhookEndpoint
from app.services import schedules, webhook_endpoints
from app.services.context import MemberContext
from app.services.scripts import create_run, create_script
from tests.conftest import add_member, create_facility, create_user

# Long enough for the second create to reach its count while the first is still open.
OVERLAP_S = 0.5


def race(app: Flask, create: Callable[[Session], object]) -> str:
    """`create` in one transaction left open, the same in another thread meanwhile, then
    the first commits: what became of the second ("created" or the 409's words)."""
    factory = db.session_factory(app)
    first, second = factory(), factory()
    outcome: dict[str, str] = {}

    def the_other() -> None:
        try:
            create(second)
            second.commit()
            outcome["second"] = "created"
        except (Conflict, TooManyQueuedRuns) as refused:
            second.rollback()
            outcome["second"] = refused.message

    try:
        create(first)
        thread = threading.Thread(target=the_other)
        thread.start()
        thread.join(OVERLAP_S)  # still waiting for the first: the cap holds it back
        first.commit()
        thread.join()
    finally:
        first.close()
        second.close()
    return outcome["second"]


def lab_world() -> dict[str, int]:
    session = db.session()
    lab = create_facility(session)
    ada = create_user(session)
    add_member(session, user=ada, facility=lab, role=Role.admin)
    script = create_script(session, MemberContext(ada, lab, Role.admin), name="Report",
                           source="result = 1", published=True)
    session.commit()
    ids = {"lab": lab.id, "ada": ada.id, "script": script.id}
    db.session.remove()
    return ids


def member_in(session: Session, ids: dict[str, int]) -> MemberContext:
    user, facility = session.get(User, ids["ada"]), session.get(Facility, ids["lab"])
    assert user is not None and facility is not None
    return MemberContext(user, facility, Role.admin)


def count(model: Any) -> int:
    db.session.remove()
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def test_two_schedules_at_once_never_pass_the_scripts_cap(app: Flask) -> None:
    ids = lab_world()

    def create(session: Session) -> object:
        script = session.get(Script, ids["script"])
        assert script is not None
        return schedules.create_schedule(session, member_in(session, ids), script,
                                         cron="0 9 * * *", caps=schedules.ScheduleCaps(
                                             per_script=1))

    assert race(app, create).startswith("a script has at most 1 schedules")
    assert count(Schedule) == 1


def test_two_webhook_endpoints_at_once_never_pass_the_facilitys_cap(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = lab_world()
    monkeypatch.setattr(webhook_endpoints, "MAX_ENDPOINTS", 1)
    vault = extensions.vault(app)

    def create(session: Session) -> object:
        return webhook_endpoints.register(
            session, facility_id=ids["lab"], url="https://example.com/hook",
            events=["run.finished"], created_by=ids["ada"], vault=vault, allow=(),
        )

    assert race(app, create).startswith("a facility has at most 1 webhook endpoints")
    assert count(WebhookEndpoint) == 1


def test_two_runs_at_once_never_pass_the_users_queued_cap(app: Flask) -> None:
    ids = lab_world()

    def create(session: Session) -> object:
        return create_run(session, member_in(session, ids), script_id=ids["script"],
                          source=None, run_input=None, interactive=False, max_queued=1)

    assert race(app, create).startswith("You have 1 run waiting to start")
    assert count(Run) == 1
