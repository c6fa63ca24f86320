"""Every final move of a run is announced on Redis: a `wait` in another process hears it.

Two Celery-mode apps on one database and one Redis stand for two processes: the web
process sends the run and waits for it; the other ends it the ways that do not pass
through a worker's driver (the heartbeat's sweep after the driver died, a cancel of a
queued run). No Celery worker runs: nothing else could end the run meanwhile.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import event, update

from app import db, extensions
from app.distributed.run_ends import MAX_CARRIED_BYTES
from app.lifecycle import INTERRUPTED, RunStatus
from app.models import Run
from app.models._types import utcnow
from app.testing import RoundTrips
from tests.conftest import make_app, queued_run, signed_in_lab, stored
from tests.distributed.conftest import free_port, redis_url

WAIT_S = 120.0  # the client's `wait`: far longer than the test may take
PROMPT_S = 60.0  # a waiter that heard the end returns long before this


@pytest.fixture
def web_and_other(tmp_path: Path, redis_prefix: str) -> Iterator[tuple[Flask, Flask]]:
    celery = {"EXECUTOR": "celery", "REDIS_URL": redis_url(), "REDIS_PREFIX": redis_prefix}
    (tmp_path / "web").mkdir()
    (tmp_path / "other").mkdir()
    web = make_app(tmp_path / "web", **celery)
    other = make_app(tmp_path / "other", DATABASE_URL=web.config["DATABASE_URL"], **celery)
    yield web, other
    for app in (web, other):
        app.extensions["db_engine"].dispose()




def row(app: Flask, run_id: str) -> Run:
    return stored(app, Run, run_id)


def waiting(app: Flask, run_id: str) -> tuple[threading.Thread, list[Any]]:
    """A client's `wait` on the run, in its own thread; its answer lands in the list."""
    answer: list[Any] = []
    queue = extensions.run_queue(app)
    thread = threading.Thread(target=lambda: answer.append(queue.wait(run_id, WAIT_S)))
    thread.start()
    return thread, answer


def test_a_run_the_sweep_interrupts_wakes_its_waiter_elsewhere(
        web_and_other: tuple[Flask, Flask]) -> None:
    web, other = web_and_other
    run_id = queued_run(web)
    extensions.run_queue(web).submit(run_id)  # the waiter listens from here on
    # A worker took it and died: running for a driver that stopped beating long ago.
    assert extensions.lifecycle(other).start(run_id, driver="celery-gone-1234")
    with other.app_context():
        db.session.execute(update(Run).where(Run.id == run_id)
                           .values(heartbeat_at=utcnow() - timedelta(hours=1)))
        db.session.commit()
    db.session.remove()
    thread, answer = waiting(web, run_id)

    extensions.heartbeat(other).sweep()

    thread.join(PROMPT_S)
    assert not thread.is_alive(), "the wait did not hear the sweep's end"
    assert [(ended["status"], ended["error"]["code"]) for ended in answer] == [
        ("failed", INTERRUPTED)]
    run = row(web, run_id)
    assert (run.status, run.error_code) == ("failed", INTERRUPTED)


def test_a_queued_run_cancelled_elsewhere_wakes_its_waiter(
        web_and_other: tuple[Flask, Flask]) -> None:
    web, other = web_and_other
    run_id = queued_run(web)
    extensions.run_queue(web).submit(run_id)
    thread, answer = waiting(web, run_id)

    assert extensions.run_queue(other).cancel(run_id)

    thread.join(PROMPT_S)
    assert not thread.is_alive(), "the wait did not hear the cancel"
    assert [ended["status"] for ended in answer] == ["cancelled"]
    assert row(web, run_id).status == "cancelled"


def test_the_health_check_says_redis_answers(web_and_other: tuple[Flask, Flask]) -> None:
    web, _other = web_and_other
    assert web.test_client().get("/healthz").get_json() == {"status": "ok", "redis": "ok"}


def test_a_wait_on_a_run_that_does_not_end_times_out(
        web_and_other: tuple[Flask, Flask]) -> None:
    web, _other = web_and_other
    run_id = queued_run(web)
    extensions.run_queue(web).submit(run_id)
    assert extensions.run_queue(web).wait(run_id, 0.2) is None
    assert row(web, run_id).status == "queued"


def test_a_run_that_pauses_for_a_sign_in_elsewhere_wakes_its_waiter(
        web_and_other: tuple[Flask, Flask]) -> None:
    """A run waiting for a person ends a `wait` as its end does (POST /runs answers then);
    it waited for the whole `wait`."""
    web, other = web_and_other
    extensions.run_queue(other)  # its pause hook announces
    run_id = queued_run(web)
    extensions.run_queue(web).submit(run_id)
    assert extensions.lifecycle(other).start(run_id, driver="celery-elsewhere-1")
    thread, answer = waiting(web, run_id)

    assert extensions.lifecycle(other).pause(run_id, grant_id="g" * 32)

    thread.join(PROMPT_S)
    assert not thread.is_alive(), "the wait did not hear the pause"
    assert [paused["status"] for paused in answer] == ["waiting_for_grant"]


def test_a_pause_answered_before_its_waiter_looked_waits_on_for_the_end(
        web_and_other: tuple[Flask, Flask], redis_prefix: str) -> None:
    """The pause's announcement comes, but the row says the run went on (its prompt was
    answered meanwhile): the waiter waits on, and gets the run as it ended."""
    web, other = web_and_other
    extensions.run_queue(other)
    run_id = queued_run(web)
    extensions.run_queue(web).submit(run_id)  # expected: no read until something is heard
    assert extensions.lifecycle(other).start(run_id, driver="celery-elsewhere-1")
    read = threading.Event()  # set once the waiter has read the run's row

    def after(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if sql.startswith("SELECT runs.id, runs.facility_id"):  # a read of the whole row
            read.set()

    event.listen(db.engine_of(web), "after_cursor_execute", after)
    try:
        thread, answer = waiting(web, run_id)
        announced = {"id": run_id, "paused": True}  # as the pause hook says it
        redis.Redis.from_url(redis_url()).publish(f"{redis_prefix}:runs-done",
                                                  json.dumps(announced))
        assert read.wait(PROMPT_S), "the waiter never read the paused run's row"
    finally:
        event.remove(db.engine_of(web), "after_cursor_execute", after)
    # It read `running`: the run goes on, and so does the wait.
    assert extensions.lifecycle(other).finish(
        run_id, target=RunStatus.SUCCEEDED, values={"result": 7})
    thread.join(PROMPT_S)
    assert not thread.is_alive(), "the wait did not hear the end"
    assert [(ended["status"], ended["result"]) for ended in answer] == [("succeeded", 7)]


@pytest.mark.parametrize("output, reads", [("small", 0), ("x" * (MAX_CARRIED_BYTES + 1), 1)])
def test_the_announcement_carries_a_small_run_to_its_waiter(
        web_and_other: tuple[Flask, Flask], output: str, reads: int) -> None:
    web, other = web_and_other
    extensions.run_queue(other)  # its end hook announces
    run_id = queued_run(web)
    extensions.run_queue(web).submit(run_id)
    assert extensions.lifecycle(other).start(run_id, driver="celery-elsewhere-1")
    with RoundTrips(db.engine_of(web)) as counted:
        thread, answer = waiting(web, run_id)
        assert extensions.lifecycle(other).finish(
            run_id, target=RunStatus.SUCCEEDED, values={"result": 7, "output": output})
        thread.join(PROMPT_S)
    assert not thread.is_alive(), "the wait did not hear the end"
    assert [(ended["status"], ended["result"], ended["output"]) for ended in answer] == [
        ("succeeded", 7, output)]
    # A small run comes whole in the announcement; a large one is read once.
    assert len([s for s in counted.statements if s.startswith("SELECT runs.")]) == reads, (
        counted.statements)


@pytest.mark.parametrize("wait", [0, 10])
def test_a_post_while_redis_is_out_of_reach_answers_with_its_queued_run(
        tmp_path: Path, redis_prefix: str, wait: float) -> None:
    """It answered 500 (the end's subscription failed) although the run was stored and
    sent on a later beat: a client that tried again got a second run."""
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    app = make_app(tmp_path, EXECUTOR="celery", REDIS_URL=nowhere, REDIS_PREFIX=redis_prefix)
    try:
        with app.app_context():
            clients = signed_in_lab(app, roles=["scripter"], csrf="t")
        started = time.monotonic()
        answer = clients["scripter"].post(
            "/api/f/lab/runs", json={"source": "result = 1", "wait": wait},
            headers={"X-CSRF-Token": "t"})
        assert answer.status_code == 201, answer.get_data(as_text=True)[:500]
        assert answer.get_json()["status"] == "queued"
        assert time.monotonic() - started < 5  # the wait is not held: no end can be heard
        with app.app_context():
            assert [run.id for run in db.session.query(Run).all()] == [answer.get_json()["id"]]
            db.session.remove()
        health = clients["scripter"].get("/healthz")
        assert (health.status_code, health.get_json()) == (
            200, {"status": "ok", "redis": "unreachable"})
    finally:
        app.extensions["db_engine"].dispose()
