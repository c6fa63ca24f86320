"""A schedule's on-failure script: named, changed and refused in the API; started once, as
the schedule's member, with the failure as its input, when a run of the schedule fails for
good (after its last retry); not for a success, a cancel, a failure with a retry to come,
or the on-failure run's own failure; a handler that cannot start says why on the schedule."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import db, extensions
from app.models import Facility, Role, Run, Schedule, Script, User
from app.models._types import utcnow
from app.services.context import MemberContext
from app.services.failure_handlers import FailureHandlers
from app.services.schedule_firing import ScheduleFirer
from app.services.scripts import create_run
from app.testing import LiveServer
from tests.app.web.conftest import call, run_count, two_facilities

BASE = "/api/f/lab/scripts/{}/schedules"


@pytest.fixture
def world(live: LiveServer) -> dict[str, Any]:
    """lab: admin Ada, scripter Sam; the published Report (the scheduled one), Alert (a
    handler declaring no inputs, which fails itself), Strict (a handler declaring a
    required `channel`), an unpublished Draft; other: Oz's published Theirs."""
    strict_inputs = {"type": "object", "properties": {"channel": {"type": "string"}},
                     "required": ["channel"]}
    return two_facilities(
        live,
        lab_roles={"ada": Role.admin, "sam": Role.scripter},
        scripts=lambda lab, other: {
            "report": Script(facility_id=lab.id, name="Report", source="result = 1",
                             published=True),
            "alert": Script(facility_id=lab.id, name="Alert", published=True,
                            source="raise ValueError('the chat is down too')"),
            "strict": Script(facility_id=lab.id, name="Strict", source="result = input",
                             published=True, input_schema=strict_inputs),
            "draft": Script(facility_id=lab.id, name="Draft", source="result = 1"),
            "theirs": Script(facility_id=other.id, name="Theirs", source="result = 2",
                             published=True),
        },
    )


def scheduled(world: dict[str, Any], handler: str | None = "alert", **fields: Any) -> int:
    """A schedule of Report by Sam naming `handler` as its on-failure script: its id."""
    handler_id = None if handler is None else world["ids"][handler]
    made = call(world, "sam", "POST", BASE.format(world["ids"]["report"]), json={
        "cron": "0 9 * * *", "on_failure_script_id": handler_id, **fields})
    assert made.status_code == 201, made.text
    assert made.json()["on_failure_script_id"] == handler_id
    schedule_id: int = made.json()["id"]
    return schedule_id


def queued_run(world: dict[str, Any], schedule_id: int) -> str:
    """Fire the schedule's due time, keeping its run queued (nothing executes it)."""
    live: LiveServer = world["live"]
    with live.app.app_context():
        schedule = db.session.get(Schedule, schedule_id)
        assert schedule is not None
        schedule.next_run_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    kept: list[str] = []
    firer = ScheduleFirer(session_factory=db.session_factory(live.app), submit=kept.append)
    assert firer.fire_due() == 1
    return kept[0]


def handler_runs(world: dict[str, Any]) -> list[dict[str, Any]]:
    found = call(world, "sam", "GET", "/api/f/lab/runs", params={"trigger": "on_failure"})
    assert found.status_code == 200, found.text
    runs: list[dict[str, Any]] = found.json()
    return runs


def schedule_of(world: dict[str, Any], schedule_id: int) -> dict[str, Any]:
    shown: dict[str, Any] = call(
        world, "sam", "GET", f"{BASE.format(world['ids']['report'])}/{schedule_id}").json()
    return shown


def test_it_is_set_shown_changed_and_cleared(world: dict[str, Any]) -> None:
    base = BASE.format(world["ids"]["report"])
    schedule_id = scheduled(world, handler=None)
    changed = call(world, "sam", "PATCH", f"{base}/{schedule_id}",
                   json={"on_failure_script_id": world["ids"]["strict"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["on_failure_script_id"] == world["ids"]["strict"]
    assert schedule_of(world, schedule_id)["on_failure_script_id"] == world["ids"]["strict"]
    kept = call(world, "sam", "PATCH", f"{base}/{schedule_id}", json={"retries": 1})
    assert kept.json()["on_failure_script_id"] == world["ids"]["strict"]
    cleared = call(world, "sam", "PATCH", f"{base}/{schedule_id}",
                   json={"on_failure_script_id": None})
    assert cleared.status_code == 200 and cleared.json()["on_failure_script_id"] is None
    listed = call(world, "sam", "GET", "/api/f/lab/schedules").json()
    assert [s["on_failure_script_id"] for s in listed] == [None]


# Scripts a schedule or a trigger may not name (another facility's, none, unpublished): the
# status and words of the refusal.
REFUSED_HANDLERS = [
    ("theirs", 404, "this facility has no script"),
    (None, 404, "this facility has no script 999999"),
    ("draft", 409, "Draft is not published: publish it first"),
]


@pytest.mark.parametrize(("handler", "status", "words"), REFUSED_HANDLERS)
def test_another_facilitys_an_unknown_or_an_unpublished_script_is_refused(
    world: dict[str, Any], handler: str | None, status: int, words: str
) -> None:
    base = BASE.format(world["ids"]["report"])
    handler_id = 999999 if handler is None else world["ids"][handler]
    made = call(world, "sam", "POST", base,
                json={"cron": "0 9 * * *", "on_failure_script_id": handler_id})
    assert made.status_code == status, made.text
    error = made.json()["error"]
    assert error["field"] == "on_failure_script_id" and words in error["message"]
    schedule_id = scheduled(world, handler=None)
    changed = call(world, "sam", "PATCH", f"{base}/{schedule_id}",
                   json={"on_failure_script_id": handler_id})
    assert changed.status_code == status and words in changed.json()["error"]["message"]
    assert schedule_of(world, schedule_id)["on_failure_script_id"] is None


def test_the_last_retrys_failure_starts_the_handler_once_and_its_own_failure_nothing(
    world: dict[str, Any],
) -> None:
    live: LiveServer = world["live"]
    lifecycle, queue = extensions.lifecycle(live.app), extensions.run_queue(live.app)
    schedule_id = scheduled(world, retries=1, retry_delay_s=30)
    first = queued_run(world, schedule_id)
    assert lifecycle.fail(first, code="http_error", message="upstream answered 502")
    # Its retry is to come: nobody is told yet.
    assert handler_runs(world) == []
    assert schedule_of(world, schedule_id)["retry_at"] is not None
    kept: list[str] = []
    later = ScheduleFirer(session_factory=db.session_factory(live.app), submit=kept.append,
                          clock=lambda: utcnow() + timedelta(seconds=31))
    assert later.fire_due() == 1
    retry = kept[0]
    assert lifecycle.fail(retry, code="http_error", message="upstream answered 502 again")
    handlers = handler_runs(world)
    assert len(handlers) == 1
    handler = handlers[0]
    ended = queue.wait(handler["id"], 60)
    assert ended is not None and ended["status"] == "failed", ended  # Alert raises
    with live.app.app_context():
        failed = db.session.get(Run, retry)
        assert failed is not None and failed.finished_at is not None
        finished_at = failed.finished_at.isoformat()
    shown = call(world, "sam", "GET", f"/api/f/lab/runs/{handler['id']}").json()
    assert (shown["trigger"], shown["handles_run_id"], shown["schedule_id"], shown["user_id"],
            shown["script_id"]) == (
        "on_failure", retry, None, world["ids"]["sam"], world["ids"]["alert"])
    assert shown["input"] == {
        "run_id": retry,
        "status": "failed",
        "error_code": "http_error",
        "error": "upstream answered 502 again",
        "attempt": 2,
        "script_id": world["ids"]["report"],
        "script_name": "Report",
        "schedule_id": schedule_id,
        "webhook_trigger_id": None,  # one shape for a schedule's and a trigger's failure
        "started_at": None,  # it never started: it failed while queued
        "finished_at": finished_at,
        "url": f"{live.url}/f/lab/runs/{retry}",
    }
    page = world["clients"]["sam"].http.get(f"{live.url}/f/lab/runs/{handler['id']}", timeout=30)
    assert f'id="run-handles"><a href="/f/lab/runs/{retry}" class="mono">{retry}</a>' in page.text
    page = world["clients"]["sam"].http.get(f"{live.url}/f/lab/runs/{retry}", timeout=30)
    link = f'<a href="/f/lab/runs/{handler["id"]}" class="mono">{handler["id"]}</a>'
    assert f'id="run-handled-by">started {link}' in page.text
    # The handler's own failure started nothing: still the schedule's two runs and one.
    assert run_count(world) == 3
    assert schedule_of(world, schedule_id)["on_failure_error"] is None


def test_a_success_a_cancel_or_a_schedule_without_a_handler_starts_nothing(
    world: dict[str, Any],
) -> None:
    lifecycle = extensions.lifecycle(world["live"].app)
    schedule_id = scheduled(world)
    cancelled = queued_run(world, schedule_id)
    assert lifecycle.cancel_idle(cancelled)
    succeeded = queued_run(world, schedule_id)
    assert lifecycle.start(succeeded, driver="test") is not None
    assert lifecycle.finish(succeeded, target="succeeded", values={"result": 1})  # type: ignore[arg-type]
    none_named = scheduled(world, handler=None)
    failed = queued_run(world, none_named)
    assert lifecycle.fail(failed, code="script_error", message="boom")
    assert handler_runs(world) == []
    assert run_count(world) == 3


def test_the_end_seen_twice_starts_one_handler_run(world: dict[str, Any]) -> None:
    live: LiveServer = world["live"]
    lifecycle = extensions.lifecycle(live.app)
    schedule_id = scheduled(world, handler="strict")
    with live.app.app_context():  # Strict's input fits: it would run
        strict = db.session.get(Script, world["ids"]["strict"])
        assert strict is not None
        strict.input_schema = {"type": "object", "properties": {"run_id": {"type": "string"}}}
        db.session.commit()
    failed = queued_run(world, schedule_id)
    assert lifecycle.fail(failed, code="timeout", message="the run took too long")
    # A second process (or a redelivered task) sees the same end.
    kept: list[str] = []
    handlers = FailureHandlers(session_factory=db.session_factory(live.app),
                               submit=kept.append, public_url=lambda: live.url)
    with live.app.app_context():
        ended = db.session.get(Run, failed)
        assert ended is not None
        handlers.on_end(failed, ended.to_dict())
    assert kept == []
    assert len(handler_runs(world)) == 1
    # Two processes racing past the first check: the second's row is refused.
    with live.app.app_context():
        session = db.session()
        sam = session.get(User, world["ids"]["sam"])
        lab = session.scalar(select(Facility).where(Facility.slug == "lab"))
        assert sam is not None and lab is not None
        member = MemberContext(sam, lab, Role.scripter)
        with pytest.raises(IntegrityError):
            create_run(session, member, script_id=world["ids"]["strict"], source=None,
                       run_input={"run_id": failed}, interactive=False,
                       handles_run_id=failed)
        session.rollback()


@pytest.mark.parametrize("why", ["deleted", "inputs"])
def test_a_handler_that_cannot_start_says_why_on_the_schedule(
    world: dict[str, Any], why: str
) -> None:
    live: LiveServer = world["live"]
    lifecycle = extensions.lifecycle(live.app)
    schedule_id = scheduled(world, handler="strict")
    if why == "deleted":
        gone = call(world, "sam", "DELETE", f"/api/f/lab/scripts/{world['ids']['strict']}")
        assert gone.status_code == 204, gone.text
    failed = queued_run(world, schedule_id)
    assert lifecycle.fail(failed, code="script_error", message="boom")
    assert handler_runs(world) == []
    error = schedule_of(world, schedule_id)["on_failure_error"]
    assert error is not None and error["at"] is not None
    if why == "deleted":
        assert error["message"] == (
            f"its on-failure script (id {world['ids']['strict']}) was deleted: choose another"
            f" one, or none, for run {failed} and the next failures to be handled")
    else:
        assert error["message"].startswith(
            f"its on-failure script Strict refused the failure of run {failed}: ")
        assert "channel" in error["message"]
    # Choosing a handler again forgets it.
    base = BASE.format(world["ids"]["report"])
    again = call(world, "sam", "PATCH", f"{base}/{schedule_id}",
                 json={"on_failure_script_id": world["ids"]["alert"]})
    assert again.status_code == 200 and again.json()["on_failure_error"] is None


def test_a_queue_that_refuses_the_handler_run_leaves_it_queued_and_the_end_unharmed(
    world: dict[str, Any],
) -> None:
    # A queue shutting down: the end hook must not raise into the lifecycle's move, whose
    # run.finished the pages would then never hear.
    live: LiveServer = world["live"]
    schedule_id = scheduled(world)
    failed = queued_run(world, schedule_id)

    def refuse(run_id: str) -> None:
        raise RuntimeError("the queue is shutting down")

    handlers = FailureHandlers(session_factory=db.session_factory(live.app), submit=refuse,
                               public_url=lambda: live.url)
    with live.app.app_context():
        run = db.session.get(Run, failed)
        assert run is not None
        run.status, run.error_code = "failed", "script_error"
        db.session.commit()
        handlers.on_end(failed, run.to_dict())
    assert [(run["status"], run["handles_run_id"]) for run in handler_runs(world)] == [
        ("queued", failed)]


@pytest.mark.parametrize("dropped_by", ["skip", "due_time"])
def test_a_failure_whose_retry_never_starts_starts_the_handler(
    world: dict[str, Any], dropped_by: str
) -> None:
    # The handler waited for the failed run's retry, which a skip (the script was
    # unpublished meanwhile) or the next due time coming first dropped: the run had failed
    # for good, and nobody was ever told.
    live: LiveServer = world["live"]
    lifecycle = extensions.lifecycle(live.app)
    schedule_id = scheduled(world, retries=1, retry_delay_s=30)
    failed = queued_run(world, schedule_id)
    assert lifecycle.fail(failed, code="http_error", message="upstream answered 502")
    assert handler_runs(world) == []  # its retry is to come
    with live.app.app_context():
        run = db.session.get(Run, failed)
        schedule = db.session.get(Schedule, schedule_id)
        report = db.session.get(Script, world["ids"]["report"])
        assert run is not None and schedule is not None and report is not None
        run.finished_at = utcnow() - timedelta(minutes=1)  # the retry is due now
        if dropped_by == "skip":
            report.published = False
        else:
            schedule.next_run_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    firer = extensions.schedule_firer(live.app)
    firer.fire_due()
    assert [h["handles_run_id"] for h in handler_runs(world)] == [failed]
    shown = schedule_of(world, schedule_id)
    assert shown["retry_at"] is None
    if dropped_by == "skip":
        assert shown["last_skip"]["reason"] == "script_unpublished"
    else:
        assert shown["last_run"]["id"] != failed
    # Told once: the next tick starts no other.
    firer.fire_due()
    assert len(handler_runs(world)) == 1


def test_a_handler_version_another_scripter_published_is_shown_to_approve(
    world: dict[str, Any],
) -> None:
    # Nothing showed it: the schedule said why only after a failure had gone untold, and
    # not how its member lets the version run.
    lifecycle = extensions.lifecycle(world["live"].app)
    schedule_id = scheduled(world)
    assert schedule_of(world, schedule_id)["on_failure_version_to_approve"] is None
    adas = call(world, "ada", "PATCH", f"/api/f/lab/scripts/{world['ids']['alert']}",
                json={"source": "result = 'ada was here'", "published": True})
    assert adas.status_code == 200, adas.text
    version = adas.json()["published_version"]
    assert schedule_of(world, schedule_id)["on_failure_version_to_approve"] == version
    listed = call(world, "sam", "GET", "/api/f/lab/schedules").json()
    assert [s["on_failure_version_to_approve"] for s in listed] == [version]
    failed = queued_run(world, schedule_id)
    assert lifecycle.fail(failed, code="script_error", message="boom")
    assert handler_runs(world) == []
    # Its member pauses and resumes it: the version is theirs to run now.
    base = f"{BASE.format(world['ids']['report'])}/{schedule_id}"
    for enabled in (False, True):
        assert call(world, "sam", "PATCH", base, json={"enabled": enabled}).status_code == 200
    assert schedule_of(world, schedule_id)["on_failure_version_to_approve"] is None
    again = queued_run(world, schedule_id)
    assert lifecycle.fail(again, code="script_error", message="boom")
    assert [run["handles_run_id"] for run in handler_runs(world)] == [again]
