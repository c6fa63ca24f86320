"""Schedules' bounds: a script and a facility have at most so many schedules (409, set by
SCRIPTBOX_MAX_SCHEDULES_*), a schedule's input has a run's limits (400 naming `input`),
queued runs do not pile up behind a schedule whose runs cannot start (the due time is
skipped, saying why), and a due time the server fails to start is recorded and passed,
not retried every tick."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from app import db
from app.models import Role, Run, Schedule
from app.models._types import utcnow
from app.services import schedule_firing, schedules
from app.services.context import MemberContext
from app.services.schedule_firing import ScheduleFirer
from app.services.scripts import MAX_INPUT, create_script
from app.testing import LiveServer, WebClient
from tests.conftest import add_member, close_live, create_facility, create_user, make_app, stored


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A live server allowing 2 schedules per script and 3 per facility; lab has Ada
    (scripter) and two published scripts, other has one of Oz's."""
    live = LiveServer(
        make_app(tmp_path, MAX_SCHEDULES_PER_SCRIPT=2, MAX_SCHEDULES_PER_FACILITY=3)
    )
    try:
        with live.app.app_context():
            session = db.session()
            lab = create_facility(session, slug="lab")
            other = create_facility(session, slug="other", name="Other")
            ada = create_user(session, email="ada@example.com")
            oz = create_user(session, email="oz@example.com")
            add_member(session, user=ada, facility=lab, role=Role.scripter)
            add_member(session, user=oz, facility=other, role=Role.scripter)
            member = MemberContext(ada, lab, Role.scripter)
            theirs = MemberContext(oz, other, Role.scripter)
            ids = {
                "one": create_script(session, member, name="One", source="result = input",
                                     published=True).id,
                "two": create_script(session, member, name="Two", source="result = input",
                                     published=True).id,
                "theirs": create_script(session, theirs, name="T", source="result = 1",
                                        published=True).id,
            }
            session.commit()
            people = {"ada": ada.id, "oz": oz.id}
        yield {
            "ids": ids,
            "ada": WebClient(live.app, live.url, people["ada"]),
            "oz": WebClient(live.app, live.url, people["oz"]),
        }
    finally:
        close_live(live)
        db.session.remove()


def _add(client: WebClient, slug: str, script_id: int, **body: Any) -> Any:
    return client.api(
        "POST", f"/api/f/{slug}/scripts/{script_id}/schedules", json={"cron": "0 9 * * *", **body}
    )


def test_a_script_and_a_facility_have_at_most_so_many_schedules(capped: dict[str, Any]) -> None:
    ada, ids = capped["ada"], capped["ids"]
    assert [_add(ada, "lab", ids["one"]).status_code for _ in range(2)] == [201, 201]
    refused = _add(ada, "lab", ids["one"], enabled=False)  # a paused one counts too
    assert refused.status_code == 409
    assert refused.json()["error"]["message"].startswith(
        "a script has at most 2 schedules: delete one it no longer needs"
    )
    assert _add(ada, "lab", ids["two"]).status_code == 201
    refused = _add(ada, "lab", ids["two"])
    assert refused.status_code == 409
    assert refused.json()["error"]["message"].startswith(
        "a facility has at most 3 schedules: delete ones it no longer needs"
    )
    # Another facility's count is its own.
    assert _add(capped["oz"], "other", ids["theirs"]).status_code == 201
    # Deleting one makes room again.
    [first, *_] = ada.api("GET", f"/api/f/lab/scripts/{ids['one']}/schedules").json()
    gone = ada.api("DELETE", f"/api/f/lab/scripts/{ids['one']}/schedules/{first['id']}")
    assert gone.status_code == 204
    assert _add(ada, "lab", ids["two"]).status_code == 201


def test_a_schedules_input_has_a_runs_limits(capped: dict[str, Any]) -> None:
    ada, script = capped["ada"], capped["ids"]["one"]
    too_big = {"text": "x" * MAX_INPUT}
    for answer in (
        _add(ada, "lab", script, input=too_big),
        ada.api("POST", "/api/f/lab/runs", json={"script_id": script, "input": too_big}),
    ):
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert (error["field"], error["message"]) == (
            "input", f"input is larger than {MAX_INPUT} bytes"
        )
    made = _add(ada, "lab", script, input={"text": "fits"})
    assert made.status_code == 201
    changed = ada.api(
        "PATCH", f"/api/f/lab/scripts/{script}/schedules/{made.json()['id']}",
        json={"input": too_big},
    )
    assert changed.status_code == 400
    assert changed.json()["error"]["field"] == "input"


def _due_schedule(app: Flask) -> tuple[int, Any]:
    """A schedule of Ada's firing every minute, due two minutes ago."""
    with app.app_context():
        session = db.session()
        lab = create_facility(session)
        ada = create_user(session)
        add_member(session, user=ada, facility=lab, role=Role.scripter)
        member = MemberContext(ada, lab, Role.scripter)
        script = create_script(session, member, name="R", source="result = 1", published=True)
        now = utcnow().replace(second=0, microsecond=0)
        schedule = schedules.create_schedule(
            session, member, script, cron="* * * * *", now=now - timedelta(minutes=2)
        )
        session.commit()
        return schedule.id, now


def _schedule(app: Flask, schedule_id: int) -> Schedule:
    return stored(app, Schedule, schedule_id)


def _runs(app: Flask) -> list[Run]:
    with db.session_factory(app)() as fresh:
        return list(fresh.scalars(select(Run).order_by(Run.created_at)))


def test_a_due_time_is_skipped_while_the_schedules_last_run_is_still_queued(app: Flask) -> None:
    schedule_id, now = _due_schedule(app)
    submitted: list[str] = []  # handed to no queue: the runs stay queued, as under a full cap

    def firer(minutes: int) -> ScheduleFirer:
        return ScheduleFirer(
            session_factory=db.session_factory(app),
            submit=submitted.append,
            clock=lambda: now + timedelta(minutes=minutes, seconds=1),
        )

    assert firer(0).fire_due() == 1
    [waiting] = _runs(app)
    for minute in (1, 2, 3):
        assert firer(minute).fire_due() == 0
        found = _schedule(app, schedule_id)
        assert found.last_due_at == now + timedelta(minutes=minute)
        assert found.last_skip == "previous_run_waiting"
        assert (found.last_skip_message or "").startswith("the previous run has not started yet")
        assert found.last_run_id == waiting.id  # the run that waits stays its last run
    assert [run.id for run in _runs(app)] == [waiting.id] == submitted
    # Once it has started (and ended), the next due time starts a run again.
    with db.session_factory(app)() as fresh, fresh.begin():
        fresh.execute(update(Run).where(Run.id == waiting.id).values(status="succeeded"))
    assert firer(4).fire_due() == 1
    found = _schedule(app, schedule_id)
    assert (found.last_skip, len(_runs(app))) == (None, 2)
    assert found.last_run_id == submitted[-1] != waiting.id


def test_a_due_time_the_server_fails_to_start_is_recorded_and_passed(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    schedule_id, now = _due_schedule(app)

    def broken(*args: Any, **kwargs: Any) -> Run:
        raise RuntimeError("the database went away")

    # No real fault makes create_run raise something other than an AppError on demand.
    monkeypatch.setattr(schedule_firing, "create_run", broken)
    firer = ScheduleFirer(
        session_factory=db.session_factory(app), submit=lambda _run: None, clock=lambda: now
    )
    assert firer.fire_due() == 0
    found = _schedule(app, schedule_id)
    assert found.last_skip == "start_failed"
    assert found.last_skip_message == schedule_firing.START_FAILED
    assert found.next_run_at == now + timedelta(minutes=1)
    # The next tick at the same moment finds nothing due: no retry loop.
    assert firer.fire_due() == 0
    assert _schedule(app, schedule_id).updated_at == found.updated_at
    assert _runs(app) == []
