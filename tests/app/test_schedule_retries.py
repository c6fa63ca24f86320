"""Retries of failed scheduled runs (app.services.schedule_retries): a run that fails for a
reason worth retrying is started again after the delay (doubling), up to the schedule's
retries, by whichever process's tick claims it first, with a due time's checks; a success,
a cancel or a failure the same run meets again is not retried; a due time coming first or
a change of the schedule drops a pending retry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from app import db
from app.models import Run, Schedule
from app.services import schedule_firing, schedule_retries, schedules
from app.services.schedule_firing import ScheduleFirer
from app.services.scripts import delete_run
from tests.app.test_schedules import fire_at_once, scripter_world
from tests.conftest import make_app, stop_app

DUE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # the daily schedule's due time


def daily(session: Any, member: Any, script: Any, **retry: int) -> Schedule:
    """A schedule due at 09:00 each day (next: DUE), input {"n": 1}, with `retry` settings."""
    made = schedules.create_schedule(
        session, member, script, cron="0 9 * * *", run_input={"n": 1},
        now=DUE - timedelta(hours=1), **retry,
    )
    session.commit()
    return made


def firer_at(app: Flask, when: datetime, started: list[str] | None = None) -> ScheduleFirer:
    return ScheduleFirer(
        session_factory=db.session_factory(app),
        submit=(started.append if started is not None else lambda _id: None),
        clock=lambda: when,
    )


def end(run_id: str, *, at: datetime, status: str = "failed", code: str | None = None) -> None:
    """End a run as its driver would have (the run engine is not started here)."""
    session = db.session()
    session.execute(
        update(Run).where(Run.id == run_id)
        .values(status=status, error_code=code, error_message=code, finished_at=at)
    )
    session.commit()


def runs() -> list[Run]:
    session = db.session()
    session.expire_all()
    return list(session.scalars(select(Run).order_by(Run.attempt, Run.created_at)))


def test_a_failed_run_is_retried_after_a_doubling_delay_then_retries_stop(app: Flask) -> None:
    session = db.session()
    member, script = scripter_world(session)
    schedule = daily(session, member, script, retries=2, retry_delay_s=60)
    assert firer_at(app, DUE).fire_due() == 1
    [first] = runs()
    end(first.id, at=DUE + timedelta(seconds=5), code="integration_unavailable")
    shown = schedules.view(session, session.get(Schedule, schedule.id), now=DUE)
    assert shown.retry_at == DUE + timedelta(seconds=65)
    assert shown.retries_description == "retries a failed run up to 2 times, after 1 min, 2 min"

    assert firer_at(app, DUE + timedelta(seconds=64)).fire_due() == 0  # not yet
    started: list[str] = []
    assert firer_at(app, DUE + timedelta(seconds=65), started).fire_due() == 1
    assert firer_at(app, DUE + timedelta(seconds=66)).fire_due() == 0  # once
    first, second = runs()
    assert started == [second.id]
    assert (second.retry_of, second.attempt, second.trigger, second.schedule_id) == (
        first.id, 2, "schedule", schedule.id)
    assert (second.input, second.interactive, second.version) == ({"n": 1}, False, 1)
    assert first.attempt == 1 and first.retry_of is None

    # The second failure waits twice as long: 120 s after it ended.
    end(second.id, at=DUE + timedelta(seconds=100), status="timed_out", code="timeout")
    assert firer_at(app, DUE + timedelta(seconds=219)).fire_due() == 0
    assert firer_at(app, DUE + timedelta(seconds=220)).fire_due() == 1
    third = runs()[2]
    assert (third.retry_of, third.attempt) == (second.id, 3)
    end(third.id, at=DUE + timedelta(seconds=230), code="script_error")
    # Retries spent: nothing more until the next due time, which starts attempt 1 again.
    assert firer_at(app, DUE + timedelta(hours=12)).fire_due() == 0
    session.expire_all()
    assert schedules.view(session, session.get(Schedule, schedule.id)).retry_at is None
    assert firer_at(app, DUE + timedelta(days=1)).fire_due() == 1
    assert [run.attempt for run in runs()] == [1, 1, 2, 3]


@pytest.mark.parametrize(
    ("status", "code", "retried"),
    [
        ("succeeded", None, False),
        ("cancelled", None, False),
        ("failed", "no_integration_grant", False),  # not_interactive: a person must connect
        ("failed", "compile_error", False),
        ("failed", "quota_exceeded", False),
        ("failed", "memory_limit", False),
        ("failed", "script_error", True),
        ("failed", "interrupted", True),
        ("failed", "http_error", True),
        ("failed", "integration_timeout", True),
        ("timed_out", "timeout", True),
    ],
)
def test_which_endings_are_retried(app: Flask, status: str, code: str | None,
                                   retried: bool) -> None:
    session = db.session()
    member, script = scripter_world(session)
    daily(session, member, script, retries=3, retry_delay_s=30)
    assert firer_at(app, DUE).fire_due() == 1
    [first] = runs()
    end(first.id, at=DUE, status=status, code=code)
    assert firer_at(app, DUE + timedelta(hours=1)).fire_due() == int(retried)
    assert len(runs()) == 1 + int(retried)


def test_no_retries_is_todays_behaviour(app: Flask) -> None:
    session = db.session()
    member, script = scripter_world(session)
    made = daily(session, member, script)
    assert (made.retries, made.retry_delay_s) == (0, 60)
    assert firer_at(app, DUE).fire_due() == 1
    end(runs()[0].id, at=DUE, code="integration_unavailable")
    assert firer_at(app, DUE + timedelta(hours=1)).fire_due() == 0


def test_a_retry_checks_what_a_due_time_checks(app: Flask) -> None:
    """An unpublished script's retry starts nothing and says so as a due time would, once."""
    session = db.session()
    member, script = scripter_world(session)
    schedule = daily(session, member, script, retries=1, retry_delay_s=60)
    assert firer_at(app, DUE).fire_due() == 1
    end(runs()[0].id, at=DUE, code="integration_unavailable")
    script.published = False
    session.commit()
    assert firer_at(app, DUE + timedelta(minutes=2)).fire_due() == 0
    assert firer_at(app, DUE + timedelta(minutes=3)).fire_due() == 0
    assert len(runs()) == 1
    session.expire_all()
    skipped = session.get(Schedule, schedule.id)
    assert skipped is not None
    assert (skipped.last_skip, skipped.last_skip_message, skipped.last_run_id) == (
        "script_unpublished", "Report is not published: publish it to resume", None)


def test_a_retry_the_server_fails_to_start_is_recorded_and_settled(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a due time's is: said on the schedule, and not tried again every tick."""
    session = db.session()
    member, script = scripter_world(session)
    schedule = daily(session, member, script, retries=2, retry_delay_s=60)
    assert firer_at(app, DUE).fire_due() == 1
    [first] = runs()
    end(first.id, at=DUE, code="integration_unavailable")
    tried: list[str | None] = []

    def broken(*args: Any, **kwargs: Any) -> Run:
        tried.append(kwargs.get("retry_of"))
        raise RuntimeError("the database went away")

    # No real fault makes create_run raise something other than an AppError on demand.
    monkeypatch.setattr(schedule_firing, "create_run", broken)
    assert firer_at(app, DUE + timedelta(minutes=2)).fire_due() == 0
    assert firer_at(app, DUE + timedelta(minutes=3)).fire_due() == 0
    assert tried == [first.id]  # once
    session.expire_all()
    settled = session.get(Schedule, schedule.id)
    assert settled is not None
    assert (settled.last_skip, settled.last_skip_message) == (
        "start_failed", schedule_firing.START_FAILED)
    assert (settled.retried_run_id, settled.last_run_id) == (first.id, first.id)
    assert [run.id for run in runs()] == [first.id]


def test_a_due_time_coming_first_drops_the_pending_retry(app: Flask) -> None:
    session = db.session()
    member, script = scripter_world(session)
    schedule = schedules.create_schedule(
        session, member, script, cron="0 * * * *", now=DUE - timedelta(minutes=1),
        retries=1, retry_delay_s=3600,
    )
    session.commit()
    assert firer_at(app, DUE).fire_due() == 1
    end(runs()[0].id, at=DUE + timedelta(seconds=10), code="integration_unavailable")
    # At 10:00:20 both the 10:00 due time and the retry (10:00:10) are due: the due time runs.
    assert firer_at(app, DUE + timedelta(hours=1, seconds=20)).fire_due() == 1
    assert [(run.attempt, run.retry_of) for run in runs()] == [(1, None), (1, None)]
    session.expire_all()
    assert session.get(Schedule, schedule.id).last_run_id == runs()[1].id  # type: ignore[union-attr]


def test_changing_the_schedule_drops_a_pending_retry(app: Flask) -> None:
    session = db.session()
    member, script = scripter_world(session)
    schedule = daily(session, member, script, retries=1, retry_delay_s=60)
    assert firer_at(app, DUE).fire_due() == 1
    end(runs()[0].id, at=DUE, code="integration_unavailable")
    schedules.update_schedule(session, member, schedule, enabled=False, now=DUE)
    schedules.update_schedule(session, member, schedule, enabled=True, now=DUE)
    session.commit()
    assert schedules.view(session, schedule, now=DUE).retry_at is None
    assert firer_at(app, DUE + timedelta(minutes=5)).fire_due() == 0


def test_a_retry_claimed_by_one_process_is_not_started_by_another(app: Flask) -> None:
    """Both read the retry as due; one claims and starts it; the other's claim, from what it
    read before, updates nothing and starts nothing."""
    session = db.session()
    member, script = scripter_world(session)
    daily(session, member, script, retries=3, retry_delay_s=30)
    assert firer_at(app, DUE).fire_due() == 1
    end(runs()[0].id, at=DUE, code="integration_unavailable")
    [read] = schedule_retries.pending(session)  # the other process's read
    session.rollback()
    assert firer_at(app, DUE + timedelta(minutes=1)).fire_due() == 1
    end(runs()[1].id, at=DUE + timedelta(minutes=2), status="succeeded")  # not left queued
    late = firer_at(app, DUE + timedelta(minutes=2))
    assert late.retry(read.id, failed=read.run_id, attempt=2) is None
    assert [run.attempt for run in runs()] == [1, 2]


def test_a_failed_run_deleted_before_its_retry_is_claimed_is_not_retried(app: Flask) -> None:
    session = db.session()
    member, script = scripter_world(session)
    daily(session, member, script, retries=1, retry_delay_s=30)
    assert firer_at(app, DUE).fire_due() == 1
    end(runs()[0].id, at=DUE, code="integration_unavailable")
    [read] = schedule_retries.pending(session)
    session.rollback()
    delete_run(session, member, read.run_id)  # a member deletes it meanwhile
    session.commit()
    firer = firer_at(app, DUE + timedelta(minutes=1))
    assert firer.retry(read.id, failed=read.run_id, attempt=2) is None
    assert runs() == []


def test_two_processes_never_start_the_same_retry(tmp_path: Path) -> None:
    """Two apps (two engines, as two processes) tick at the same moment over 10 schedules
    whose last runs failed: 10 retries in all, one per schedule."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_app(tmp_path / "a")
    second = make_app(tmp_path / "b", DATABASE_URL=first.config["DATABASE_URL"])
    try:
        with first.app_context():
            session = db.session()
            member, script = scripter_world(session)
            for _ in range(10):
                schedules.create_schedule(
                    session, member, script, cron="0 9 * * *", now=DUE - timedelta(hours=1),
                    retries=3, retry_delay_s=30, caps=schedules.ScheduleCaps(per_script=10),
                )
            session.commit()
            assert firer_at(first, DUE).fire_due() == 10
            for run in runs():
                end(run.id, at=DUE, code="integration_unavailable")
        started: dict[str, list[str]] = {"a": [], "b": []}
        later = DUE + timedelta(minutes=1)
        fire_at_once([firer_at(first, later, started["a"]),
                      firer_at(second, later, started["b"])])
        retries = started["a"] + started["b"]
        assert len(retries) == len(set(retries)) == 10
        with first.app_context():
            found = runs()
            assert sorted(r.id for r in found if r.attempt == 2) == sorted(retries)
            assert len({r.schedule_id for r in found if r.attempt == 2}) == 10
    finally:
        stop_app(first)
        stop_app(second)
