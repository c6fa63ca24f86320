"""A webhook trigger's on-failure script, as a schedule's (test_schedule_failure_handlers,
whose world and helpers these are): named, changed and refused in the API; started once,
as the trigger's member, with the failure as its input, for every run of the trigger that
ends failed (a trigger retries nothing); not for a success, a cancel or the on-failure
run's own failure; a handler that cannot start, deleted or a version its member did not
approve, says why on the trigger."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from app import db, extensions
from app.models import Run, WebhookTrigger
from app.services import trigger_starts
from app.testing import LiveServer
from tests.app.web.conftest import call, run_count
from tests.app.web.test_schedule_failure_handlers import REFUSED_HANDLERS, handler_runs, world
from tests.app.web.test_webhook_triggers import ended, hook, make, triggers_of

__all__ = ["world"]  # the schedule tests' world, shared


def made(world: dict[str, Any], script: str = "report", handler: str | None = "alert",
         who: str = "sam") -> dict[str, Any]:
    """A trigger of `script` by `who` naming `handler` as its on-failure script."""
    handler_id = None if handler is None else world["ids"][handler]
    trigger = make(world, script, who, on_failure_script_id=handler_id)
    assert trigger["on_failure_script_id"] == handler_id
    return trigger


def shown(world: dict[str, Any], trigger: dict[str, Any], script: str = "report") -> dict[str, Any]:
    """The trigger as the API lists it."""
    listed = call(world, "sam", "GET", triggers_of(world, script)).json()
    found: dict[str, Any] = next(t for t in listed if t["id"] == trigger["id"])
    return found


def queued_run(world: dict[str, Any], trigger_id: int) -> str:
    """A run of the trigger as its URL starts one, kept queued (nothing executes it)."""
    with world["live"].app.app_context():
        session = db.session()
        trigger = session.get(WebhookTrigger, trigger_id)
        assert trigger is not None
        run = trigger_starts.start_run(
            session, trigger_starts.startable(session, trigger), run_input={})
        session.commit()
        return run.id


def test_it_is_set_shown_changed_and_cleared(world: dict[str, Any]) -> None:
    trigger = made(world, handler=None)
    one = f"{triggers_of(world, 'report')}/{trigger['id']}"
    changed = call(world, "sam", "PATCH", one,
                   json={"on_failure_script_id": world["ids"]["strict"]})
    assert changed.status_code == 200, changed.text
    assert shown(world, trigger)["on_failure_script_id"] == world["ids"]["strict"]
    paused = call(world, "sam", "PATCH", one, json={"enabled": False})
    assert paused.json()["on_failure_script_id"] == world["ids"]["strict"]
    cleared = call(world, "ada", "PATCH", one, json={"on_failure_script_id": None})
    assert cleared.status_code == 200 and cleared.json()["on_failure_script_id"] is None
    empty = call(world, "sam", "PATCH", one, json={})
    assert empty.status_code == 400 and "on_failure_script_id" in empty.text


@pytest.mark.parametrize(("handler", "status", "words"), REFUSED_HANDLERS)
def test_another_facilitys_an_unknown_or_an_unpublished_script_is_refused(
    world: dict[str, Any], handler: str | None, status: int, words: str
) -> None:
    handler_id = 999999 if handler is None else world["ids"][handler]
    refused = call(world, "sam", "POST", triggers_of(world, "report"),
                   json={"name": "Form", "on_failure_script_id": handler_id})
    assert refused.status_code == status, refused.text
    error = refused.json()["error"]
    assert error["field"] == "on_failure_script_id" and words in error["message"]
    assert call(world, "sam", "GET", triggers_of(world, "report")).json() == []
    trigger = made(world, handler=None)
    changed = call(world, "sam", "PATCH", f"{triggers_of(world, 'report')}/{trigger['id']}",
                   json={"on_failure_script_id": handler_id})
    assert changed.status_code == status and words in changed.json()["error"]["message"]
    assert shown(world, trigger)["on_failure_script_id"] is None


def test_a_failed_run_from_its_url_starts_the_handler_once_and_its_own_failure_nothing(
    world: dict[str, Any],
) -> None:
    # Alert fails, and is its own on-failure script: its handler run fails too, and stops.
    live: LiveServer = world["live"]
    # The end hooks run in turn after the run's end is written: one added last runs once
    # the on-failure hook has, whereas the queue's wait wakes before it.
    hooks_done = threading.Event()
    extensions.lifecycle(live.app).on_end(lambda run_id, run: hooks_done.set())
    trigger = made(world, script="alert", handler="alert")
    posted = hook(world, trigger["url"], json={"who": "form"})
    assert posted.status_code == 202, posted.text
    failed_id = posted.json()["run_id"]
    failed = ended(world, failed_id)
    assert failed["status"] == "failed"
    assert hooks_done.wait(60)
    handlers = handler_runs(world)
    assert len(handlers) == 1
    handler = ended(world, handlers[0]["id"])
    assert handler["status"] == "failed", handler
    with live.app.app_context():
        run = db.session.get(Run, failed_id)
        assert run is not None and run.started_at and run.finished_at
        started_at, finished_at = run.started_at.isoformat(), run.finished_at.isoformat()
    assert (handler["trigger"], handler["handles_run_id"], handler["schedule_id"],
            handler["webhook_trigger_id"], handler["user_id"], handler["script_id"]) == (
        "on_failure", failed_id, None, None, world["ids"]["sam"], world["ids"]["alert"])
    assert handler["input"] == {
        "run_id": failed_id,
        "status": "failed",
        "error_code": failed["error"]["code"],
        "error": failed["error"]["message"],
        "attempt": 1,
        "script_id": world["ids"]["alert"],
        "script_name": "Alert",
        "schedule_id": None,
        "webhook_trigger_id": trigger["id"],
        "started_at": started_at,
        "finished_at": finished_at,
        "url": f"{live.url}/f/lab/runs/{failed_id}",
    }
    assert "the chat is down too" in failed["error"]["message"]
    page = world["clients"]["sam"].http.get(f"{live.url}/f/lab/runs/{failed_id}", timeout=30)
    link = f'<a href="/f/lab/runs/{handler["id"]}" class="mono">{handler["id"]}</a>'
    assert f'id="run-handled-by">started {link}' in page.text
    # The handler's own failure started nothing: the trigger's run and its handler's.
    assert run_count(world) == 2
    assert shown(world, trigger, "alert")["on_failure_error"] is None


def test_every_failure_counts_and_a_success_a_cancel_or_no_handler_start_nothing(
    world: dict[str, Any],
) -> None:
    lifecycle = extensions.lifecycle(world["live"].app)
    trigger = made(world)
    succeeded = hook(world, trigger["url"], json={})
    assert succeeded.status_code == 202, succeeded.text
    assert ended(world, succeeded.json()["run_id"])["status"] == "succeeded"
    cancelled = queued_run(world, trigger["id"])
    assert lifecycle.cancel_idle(cancelled)
    none_named = made(world, handler=None)
    assert lifecycle.fail(queued_run(world, none_named["id"]), code="script_error",
                          message="boom")
    assert handler_runs(world) == []
    # No retries to wait for: each failure of the trigger's runs starts its own.
    first, second = queued_run(world, trigger["id"]), queued_run(world, trigger["id"])
    assert lifecycle.fail(first, code="http_error", message="upstream answered 502")
    assert lifecycle.fail(second, code="http_error", message="upstream answered 502")
    assert sorted(run["handles_run_id"] for run in handler_runs(world)) == sorted(
        [first, second])


def test_a_deleted_handler_says_why_on_the_trigger(world: dict[str, Any]) -> None:
    lifecycle = extensions.lifecycle(world["live"].app)
    trigger = made(world, handler="strict")
    gone = call(world, "sam", "DELETE", f"/api/f/lab/scripts/{world['ids']['strict']}")
    assert gone.status_code == 204, gone.text
    failed = queued_run(world, trigger["id"])
    assert lifecycle.fail(failed, code="script_error", message="boom")
    assert handler_runs(world) == []
    error = shown(world, trigger)["on_failure_error"]
    assert error is not None and error["at"] is not None
    assert error["message"] == (
        f"its on-failure script (id {world['ids']['strict']}) was deleted: choose another"
        f" one, or none, for run {failed} and the next failures to be handled")
    again = call(world, "sam", "PATCH", f"{triggers_of(world, 'report')}/{trigger['id']}",
                 json={"on_failure_script_id": world["ids"]["alert"]})
    assert again.status_code == 200 and again.json()["on_failure_error"] is None


def test_a_handler_version_another_scripter_published_waits_for_the_triggers_approval(
    world: dict[str, Any],
) -> None:
    """As the trigger's own script: the on-failure run runs as its maker, so a version of
    the handler someone else published runs only once the maker approves the trigger."""
    lifecycle = extensions.lifecycle(world["live"].app)
    trigger = made(world)
    adas = call(world, "ada", "PATCH", f"/api/f/lab/scripts/{world['ids']['alert']}",
                json={"source": "result = 'ada was here'", "published": True})
    assert adas.status_code == 200, adas.text
    failed = queued_run(world, trigger["id"])
    assert lifecycle.fail(failed, code="script_error", message="boom")
    assert handler_runs(world) == []
    error = shown(world, trigger)["on_failure_error"]
    assert error is not None and error["message"].startswith(
        "its on-failure script Alert did not run: its version 1 was published by another"
        " scripter after Sam chose it")
    assert shown(world, trigger)["on_failure_version_to_approve"] == 1
    approved = call(world, "sam", "POST",
                    f"{triggers_of(world, 'report')}/{trigger['id']}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["on_failure_version_to_approve"] is None
    again = queued_run(world, trigger["id"])
    assert lifecycle.fail(again, code="script_error", message="boom")
    assert [run["handles_run_id"] for run in handler_runs(world)] == [again]
    assert shown(world, trigger)["on_failure_error"] is None
