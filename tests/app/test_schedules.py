"""Scheduled runs (app.services.schedule_firing): each due time fires exactly once however
many processes claim it, a server that was down fires once and moves on, due times follow
the zone's wall clock across DST, a schedule whose member or script no longer allows it
records why instead of firing, and a due schedule becomes a finished, non-interactive run
on the embedded executor."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from app import db, extensions
from app.models import Grant, Role, Run, Schedule, Script
from app.models._types import utcnow
from app.services import people, schedules, webhook_endpoints
from app.services.context import MemberContext
from app.services.schedule_firing import ScheduleFirer
from app.services.scripts import create_run, create_script, update_script
from tests.conftest import (
    add_member,
    create_facility,
    create_integration,
    create_user,
    make_app,
    stored,
)
from tests.listener import Listener

NON_INTERACTIVE_CALL = """
try:
    integrations.get("keyed", "/me")
    result = "answered"
except integrations.NoIntegrationGrant as refused:
    result = [refused.code, refused.reason]
"""


def scripter_world(session: Any, *, source: str = "result = input") -> tuple[MemberContext, Script]:
    """Facility lab, its scripter Ada and a published script of hers."""
    lab = create_facility(session)
    ada = create_user(session)
    add_member(session, user=ada, facility=lab, role=Role.scripter)
    member = MemberContext(ada, lab, Role.scripter)
    script = create_script(session, member, name="Report", source=source, published=True)
    session.commit()
    return member, script


def fixed(now: datetime) -> Any:
    return lambda: now


def fire_at_once(firers: list[ScheduleFirer]) -> None:
    """Each firer's fire_due in a thread of its own, all let go at the same moment (as
    processes ticking together); re-raises the first error any of them met."""
    barrier = threading.Barrier(len(firers))
    errors: list[BaseException] = []

    def fire(firer: ScheduleFirer) -> None:
        try:
            barrier.wait(30)
            firer.fire_due()
        except BaseException as failed:  # raised in the test's thread below
            errors.append(failed)

    threads = [threading.Thread(target=fire, args=(firer,)) for firer in firers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]


def test_each_due_time_fires_once_with_two_processes_claiming(tmp_path: Path) -> None:
    """Two apps (two engines and pools, as two processes) fire the same 20 due schedules at
    the same moment: 20 runs, one per schedule, each schedule moved to its next time once."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_app(tmp_path / "a")
    second = make_app(tmp_path / "b", DATABASE_URL=first.config["DATABASE_URL"])
    now = utcnow().replace(microsecond=0)
    with first.app_context():
        session = db.session()
        member, script = scripter_world(session)
        for _ in range(20):
            schedules.create_schedule(
                session, member, script, cron="*/5 * * * *", now=now - timedelta(minutes=11),
                caps=schedules.ScheduleCaps(per_script=20),
            )
        session.commit()
        due = {s.id: s.next_run_at for s in session.scalars(select(Schedule))}
        assert all(when is not None and when <= now for when in due.values())
    submitted: dict[str, list[str]] = {"a": [], "b": []}
    firers = {
        name: ScheduleFirer(
            session_factory=db.session_factory(app), submit=submitted[name].append,
            clock=fixed(now),
        )
        for name, app in (("a", first), ("b", second))
    }
    fire_at_once(list(firers.values()))
    started = submitted["a"] + submitted["b"]
    assert len(started) == len(set(started)) == 20
    with first.app_context():
        runs = db.session.scalars(select(Run)).all()
        assert sorted(run.id for run in runs) == sorted(started)
        assert sorted(run.schedule_id for run in runs) == sorted(due)  # one per schedule
        assert {run.interactive for run in runs} == {False}
        for schedule in db.session.scalars(select(Schedule)):
            assert schedule.last_due_at == due[schedule.id]
            assert schedule.next_run_at is not None and schedule.next_run_at > now
            assert schedule.last_run_id in started
    # Firing again at the same moment finds nothing due.
    assert firers["a"].fire_due() == firers["b"].fire_due() == 0


def test_a_server_down_over_many_due_times_fires_once_then_keeps_the_calendar(
    app: Flask,
) -> None:
    session = db.session()
    member, script = scripter_world(session)
    down_since = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    schedule = schedules.create_schedule(session, member, script, cron="0 * * * *",
                                         now=down_since)
    session.commit()
    assert schedule.next_run_at == datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    back = datetime(2026, 3, 2, 12, 17, tzinfo=UTC)  # 07:00 .. 12:00 passed: six due times
    submitted: list[str] = []
    firer = ScheduleFirer(session_factory=db.session_factory(app), submit=submitted.append,
                          clock=fixed(back))
    assert firer.fire_due() == 1
    assert firer.fire_due() == 0  # not a burst
    session.expire_all()
    schedule = session.get(Schedule, schedule.id)
    assert schedule is not None
    assert schedule.last_due_at == datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    assert schedule.next_run_at == datetime(2026, 3, 2, 13, 0, tzinfo=UTC)  # the next future
    [run] = session.scalars(select(Run)).all()
    # It ran meanwhile: one still queued would have 13:00 skipped (test_schedule_limits).
    session.execute(update(Run).where(Run.id == run.id).values(status="succeeded"))
    session.commit()
    later = ScheduleFirer(session_factory=db.session_factory(app), submit=submitted.append,
                          clock=fixed(datetime(2026, 3, 2, 13, 0, 5, tzinfo=UTC)))
    assert later.fire_due() == 1
    session.expire_all()
    assert session.get(Schedule, schedule.id).next_run_at == datetime(  # type: ignore[union-attr]
        2026, 3, 2, 14, 0, tzinfo=UTC)


def test_due_times_follow_the_zone_across_dst(app: Flask) -> None:
    """02:30 in Berlin: on the night the clocks skip 02:00-03:00 it fires at 03:00 CEST
    (01:00 UTC), the next days at 02:30 CEST (00:30 UTC); in autumn the repeated 02:30
    fires once. 09:00 in New York is 14:00 UTC in winter and 13:00 UTC in summer."""
    session = db.session()
    member, script = scripter_world(session)
    spring = schedules.create_schedule(
        session, member, script, cron="30 2 * * *", timezone="Europe/Berlin",
        now=datetime(2026, 3, 27, 12, 0, tzinfo=UTC),
    )
    session.commit()
    shown = schedules.view(session, spring, now=datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    assert shown.description == "At 02:30 every day"
    assert shown.next_times == [
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC),  # CET, +01:00
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # 02:30 does not exist: 03:00 CEST
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),  # CEST, +02:00
    ]
    autumn = schedules.view(session, spring, now=datetime(2026, 10, 24, 12, 0, tzinfo=UTC))
    assert autumn.next_times == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 02:30 CEST, the first of the two
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),  # CET again
        datetime(2026, 10, 27, 1, 30, tzinfo=UTC),
    ]
    # Firing walks the same calendar: the due time on the short night moves to the next day's.
    firer = ScheduleFirer(session_factory=db.session_factory(app), submit=lambda _id: None,
                          clock=fixed(datetime(2026, 3, 29, 1, 0, 1, tzinfo=UTC)))
    with db.session_factory(app)() as other:
        other.execute(
            Schedule.__table__.update().values(next_run_at=datetime(2026, 3, 29, 1, 0, tzinfo=UTC))
        )
        other.commit()
    assert firer.fire_due() == 1
    session.expire_all()
    assert session.get(Schedule, spring.id).next_run_at == datetime(  # type: ignore[union-attr]
        2026, 3, 30, 0, 30, tzinfo=UTC)
    new_york = schedules.create_schedule(
        session, member, script, cron="0 9 * * 1-5", timezone="America/New_York",
        now=datetime(2026, 3, 6, 15, 0, tzinfo=UTC),  # a Friday afternoon, before DST (Mar 8)
    )
    assert schedules.view(session, new_york, now=datetime(2026, 3, 6, 15, 0, tzinfo=UTC)
                          ).next_times == [
        datetime(2026, 3, 9, 13, 0, tzinfo=UTC),  # Monday, EDT
        datetime(2026, 3, 10, 13, 0, tzinfo=UTC),
        datetime(2026, 3, 11, 13, 0, tzinfo=UTC),
    ]
    assert new_york.next_run_at == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("removed", "owner_removed"),
        ("demoted", "owner_demoted"),
        ("disabled", "owner_removed"),
        ("unpublished", "script_unpublished"),
        ("input_no_longer_fits", "run_refused"),
    ],
)
def test_a_schedule_its_member_or_script_no_longer_allows_records_why(
    app: Flask, change: str, reason: str
) -> None:
    session = db.session()
    member, script = scripter_world(session)
    start = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
    schedule = schedules.create_schedule(session, member, script, cron="0 9 * * *",
                                         run_input={"n": 1}, now=start)
    session.commit()
    if change == "removed":
        people.remove_membership(session, user_id=member.user.id, facility=member.facility)
    elif change == "demoted":
        add_member(session, user=member.user, facility=member.facility, role=Role.member)
    elif change == "disabled":
        member.user.is_active = False
    elif change == "unpublished":
        update_script(session, member, script, published=False)
    else:  # the published inputs now want a number `count`, which the schedule lacks
        update_script(session, member, script, published=True, input_fields=[
            {"name": "count", "type": "number", "required": True}])
    session.commit()
    due = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
    submitted: list[str] = []
    firer = ScheduleFirer(session_factory=db.session_factory(app), submit=submitted.append,
                          clock=fixed(due + timedelta(seconds=3)))
    assert firer.fire_due() == 0
    assert submitted == []
    session.expire_all()
    assert session.scalars(select(Run)).all() == []
    found = session.get(Schedule, schedule.id)
    assert found is not None
    assert (found.last_skip, found.last_due_at, found.last_run_id) == (reason, due, None)
    assert found.last_skip_message
    assert found.next_run_at == datetime(2026, 5, 5, 9, 0, tzinfo=UTC)  # it moves on


def test_an_input_that_fits_again_clears_the_refused_due_time(app: Flask) -> None:
    """The published inputs now want `count`, so a due time is refused (run_refused); once
    the schedule gets an input that fits, it no longer says its input is refused."""
    session = db.session()
    member, script = scripter_world(session)
    start = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
    schedule = schedules.create_schedule(
        session, member, script, cron="0 9 * * *", run_input={"n": 1}, now=start
    )
    update_script(
        session,
        member,
        script,
        published=True,
        input_fields=[{"name": "count", "type": "number", "required": True}],
    )
    session.commit()
    due = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
    firer = ScheduleFirer(
        session_factory=db.session_factory(app),
        submit=lambda _id: None,
        clock=fixed(due + timedelta(seconds=3)),
    )
    assert firer.fire_due() == 0
    session.expire_all()
    found = session.get(Schedule, schedule.id)
    assert found is not None and found.last_skip == "run_refused"
    schedules.update_schedule(session, member, found, cron="0 10 * * *", now=due)
    assert found.last_skip == "run_refused"  # another change leaves the input refused
    schedules.update_schedule(session, member, found, run_input={"count": 2}, now=due)
    assert (found.last_skip, found.last_skip_message) == (None, None)
    assert found.last_due_at == due  # when it last came due stays


def test_a_paused_schedule_does_not_fire_and_resumes_from_now(app: Flask) -> None:
    session = db.session()
    member, script = scripter_world(session)
    start = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
    schedule = schedules.create_schedule(session, member, script, cron="0 9 * * *", now=start)
    schedules.update_schedule(session, member, schedule, enabled=False, now=start)
    session.commit()
    assert schedule.next_run_at is None
    firer = ScheduleFirer(session_factory=db.session_factory(app), submit=lambda _id: None,
                          clock=fixed(datetime(2026, 5, 9, 0, 0, tzinfo=UTC)))
    assert firer.fire_due() == 0
    schedules.update_schedule(session, member, schedule, enabled=True,
                              now=datetime(2026, 5, 9, 0, 0, tzinfo=UTC))
    assert schedule.next_run_at == datetime(2026, 5, 9, 9, 0, tzinfo=UTC)


def test_a_due_schedule_becomes_a_finished_non_interactive_run_on_the_embedded_executor(
    tmp_path: Path,
) -> None:
    """The heartbeat's start-up sweep fires it, the thread queue runs it; the call that
    would need a sign-in raises no_integration_grant with reason not_interactive."""
    app = make_app(tmp_path, HEARTBEAT_S=0.5)
    with app.app_context():
        session = db.session()
        member, script = scripter_world(session, source=NON_INTERACTIVE_CALL)
        create_integration(session, facility=member.facility, key="keyed")
        # Yearly, set up a year ago: due now, and not again while the test runs (an
        # every-minute one fired a second run whenever the test crossed a minute).
        schedule = schedules.create_schedule(
            session, member, script, cron="0 0 1 1 *", run_input={"report": "daily"},
            now=utcnow() - timedelta(days=366),
        )
        session.commit()
        schedule_id = schedule.id
    extensions.heartbeat(app).start()  # start-up sweep: its tick fires what is due
    with app.app_context():
        found = db.session.get(Schedule, schedule_id, populate_existing=True)
        assert found is not None and found.last_run_id is not None, found and found.last_skip
        run_id = found.last_run_id
    ended = extensions.run_queue(app).wait(run_id, 60)
    assert ended is not None, "the scheduled run did not finish"
    assert ended["status"] == "succeeded", ended
    assert ended["result"] == ["no_integration_grant", "not_interactive"]
    assert (ended["trigger"], ended["schedule_id"]) == ("schedule", schedule_id)
    assert ended["input"] == {"report": "daily"}
    with app.app_context():
        assert db.session.scalars(select(Run.id)).all() == [run_id]


def test_a_scheduled_run_does_not_wait_for_a_grant_required_webhook(tmp_path: Path) -> None:
    """An endpoint subscribed to grant.required lets an API run wait for the embedding
    app's connect link; a scheduled run still raises not_interactive at once (it parked
    until the prompt expired, and each due time parked one more) and opens no prompt."""
    app = make_app(tmp_path, HEARTBEAT_S=3600, GRANT_TIMEOUT_S=2)
    listener = Listener().start()
    try:
        with app.app_context():
            session = db.session()
            member, script = scripter_world(session, source=NON_INTERACTIVE_CALL)
            create_integration(session, facility=member.facility, key="keyed")
            webhook_endpoints.register(
                session,
                facility_id=member.facility.id,
                url=listener.url,
                events=["grant.required"],
                created_by=member.user.id,
                vault=extensions.vault(app),
                allow=app.config["PRIVATE_NETWORK_ALLOW"],
            )
            schedules.create_schedule(
                session, member, script, cron="0 0 1 1 *", now=utcnow() - timedelta(days=366)
            )
            session.commit()
        assert extensions.schedule_firer(app).fire_due() == 1
        with app.app_context():
            run_id = db.session.scalars(select(Run.id)).one()
        ended = extensions.run_queue(app).wait(run_id, 60)
        assert ended is not None, "the scheduled run did not finish"
        assert ended["result"] == ["no_integration_grant", "not_interactive"]
        with app.app_context():
            assert db.session.scalars(select(Grant)).all() == []
    finally:
        listener.close()


def test_a_scheduled_run_waits_queued_under_the_caps_like_any_other(tmp_path: Path) -> None:
    """Its member already has a run going and may have one at a time: the scheduled run is
    queued, and starts (and finishes) once the other one ends."""
    # The beat's start-up sweep only: the test fires the schedule itself.
    app = make_app(tmp_path, MAX_RUNS_PER_USER=1, HEARTBEAT_S=3600)
    with app.app_context():
        session = db.session()
        member, script = scripter_world(session)
        spinning = create_run(session, member, script_id=None, source="while True:\n    pass\n",
                              run_input=None, interactive=False)
        session.commit()
        page = extensions.bus(app).subscribe(member.user.id, member.facility.id)
    queue = extensions.run_queue(app)
    try:
        queue.submit(spinning.id)
        while True:  # the run's own events say when it is running
            message = page.get(timeout=60)
            assert message is not None, "the first run never started"
            if message == {"type": "run.status", "run_id": spinning.id, "status": "running"}:
                break
        with app.app_context():
            schedules.create_schedule(db.session(), member, db.session.merge(script),
                                      cron="* * * * *", run_input=5,
                                      now=utcnow() - timedelta(minutes=2))
            db.session.commit()
        assert extensions.schedule_firer(app).fire_due() == 1
        with app.app_context():
            scheduled = db.session.scalars(select(Run).where(Run.schedule_id.is_not(None))).one()
            assert scheduled.status == "queued"  # over the cap: it waits
        assert queue.cancel(spinning.id)
        ended = queue.wait(scheduled.id, 60)
        assert ended is not None and (ended["status"], ended["result"]) == ("succeeded", 5)
    finally:
        page.close()
        queue.cancel(spinning.id)


def test_a_version_another_scripter_publishes_waits_for_the_members_approval(
    app: Flask,
) -> None:
    """A schedule runs as Ada with her accounts: a version Bea publishes later is skipped
    (script_changed) until Ada changes or resumes the schedule; an admin's change approves
    nothing; a version Ada publishes herself runs at once."""
    with app.app_context():
        session = db.session()
        ada_member, script = scripter_world(session, source="result = 'v1'")
        lab = ada_member.facility
        bea = create_user(session, email="bea@example.com", name="Bea")
        add_member(session, user=bea, facility=lab, role=Role.scripter)
        root = create_user(session, email="root@example.com", name="Root")
        add_member(session, user=root, facility=lab, role=Role.admin)
        now = utcnow().replace(second=0, microsecond=0)
        schedule_id = schedules.create_schedule(
            session, ada_member, script, cron="* * * * *", now=now - timedelta(minutes=1)
        ).id
        session.commit()
        script_id, ada_id, lab_id = script.id, ada_member.user.id, lab.id
        bea_id, root_id = bea.id, root.id
    submitted: list[str] = []

    def fire(minute: int) -> Schedule:
        """Fire the due time `minute` minutes on; the schedule as it then is. A run it
        started is ended at once, so the next due time has none waiting."""
        firer = ScheduleFirer(session_factory=db.session_factory(app), submit=submitted.append,
                              clock=fixed(now + timedelta(minutes=minute, seconds=1)))
        firer.fire_due()
        with db.session_factory(app)() as fresh, fresh.begin():
            fresh.execute(update(Run).where(Run.status == "queued").values(status="succeeded"))
            found = fresh.get(Schedule, schedule_id)
            assert found is not None
            fresh.expunge(found)
            return found

    def as_member(user_id: int) -> MemberContext:
        session = db.session()
        membership = people.membership_of(session, user_id, lab_id)
        assert membership is not None
        return MemberContext(membership.user, membership.facility, membership.role)

    def publish(user_id: int, source: str) -> None:
        with app.app_context():
            update_script(db.session(), as_member(user_id), db.session.get(Script, script_id),
                          source=source, published=True)
            db.session.commit()

    def change(user_id: int) -> None:  # pause and resume, as the page's toggle does
        with app.app_context():
            member = as_member(user_id)
            found = db.session.get(Schedule, schedule_id)
            schedules.update_schedule(db.session(), member, found, enabled=False)
            schedules.update_schedule(db.session(), member, found, enabled=True,
                                      now=now + timedelta(minutes=minute_now[0]))
            db.session.commit()

    def last_run_source() -> str:
        with db.session_factory(app)() as fresh:
            run = fresh.get(Run, submitted[-1])
            assert run is not None
            return run.source

    def current() -> Schedule:
        return stored(app, Schedule, schedule_id)

    minute_now = [0]
    first = fire(0)
    assert (first.last_skip, first.approved_version) == (None, 1)
    assert "v1" in last_run_source()

    publish(bea_id, "result = 'v2, by Bea'")
    skipped = fire(1)
    assert skipped.last_skip == "script_changed" and len(submitted) == 1
    assert (skipped.last_skip_message or "").startswith(
        "version 2 of Report, saved by Bea, was published after")

    minute_now[0] = 1  # each change counts the next due time from its own minute
    change(root_id)  # an admin's pause and resume: still Ada's accounts, still skipped
    assert current().last_skip == "script_changed"  # and the panel still says so
    assert fire(2).last_skip == "script_changed" and len(submitted) == 1

    minute_now[0] = 2
    change(ada_id)  # Ada approves what is published now
    assert current().last_skip is None  # the panel no longer asks her to, at once
    approved = fire(3)
    assert (approved.last_skip, approved.approved_version) == (None, 2)
    assert "v2, by Bea" in last_run_source()

    publish(ada_id, "result = 'v3, by Ada'")  # her own: no approval needed
    assert fire(4).last_skip is None and "v3, by Ada" in last_run_source()
    publish(bea_id, "result = 'v4, by Bea'")
    assert fire(5).last_skip == "script_changed"
    publish(ada_id, "result = 'v5, by Ada'")  # publishing approves, and clears the skip
    assert current().last_skip is None and current().last_skip_message is None
    with app.app_context():
        assert db.session.get(Schedule, schedule_id).approved_version == 5  # type: ignore[union-attr]
