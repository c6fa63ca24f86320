"""Two processes on one database: a run whose driver keeps beating is never taken for dead
by the other's sweep, and a run whose driver stops beating is ended `interrupted`."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.exc import IntegrityError

from app import db, extensions
from app.models import Run
from app.runner.heartbeat import Heartbeat
from tests.conftest import make_app, queued_run, stored

SPINS = "print('spinning')\nwhile True:\n    pass\n"
# Three missed beats end a run: at 0.1 s one slow moment of a busy CI machine (a 0.3 s
# pause of the driving app) ended it before the test looked.
BEAT_S = 0.25




def row(app: Flask, run_id: str) -> Run:
    return stored(app, Run, run_id)


def until(condition: Any, timeout: float = 30.0) -> None:
    """Poll the shared database (the other process's writes raise no event here)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(BEAT_S / 2)


def test_a_beating_driver_keeps_its_run_and_a_silent_one_loses_it(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    driving = make_app(tmp_path / "a", HEARTBEAT_S=BEAT_S)
    # The sweeper takes a run for dead after three of *its* beats: four times the driver's
    # (3 s) so that one stall of a busy CI machine (over 0.75 s at BEAT_S, under load on
    # PostgreSQL) is not taken for a death; the driver still beats at BEAT_S.
    sweeping = make_app(tmp_path / "b", DATABASE_URL=driving.config["DATABASE_URL"],
                        HEARTBEAT_S=4 * BEAT_S)
    run_id = queued_run(driving, SPINS)
    try:
        extensions.run_queue(driving).submit(run_id)
        until(lambda: row(driving, run_id).status == "running")
        assert row(driving, run_id).driver == extensions.driver(driving).driver_id
        extensions.heartbeat(sweeping).start()  # (before the claim, it could take the run)
        first_beat = row(driving, run_id).heartbeat_at
        # Twenty beats later the other process has swept five times; the run is still its own.
        later = first_beat + timedelta(seconds=20 * BEAT_S)
        until(lambda: row(driving, run_id).heartbeat_at > later)
        assert row(driving, run_id).status == "running"

        extensions.heartbeat(driving).stop()  # the driver falls silent (as if it died)
        until(lambda: row(sweeping, run_id).status != "running")
        ended = row(sweeping, run_id)
        assert (ended.status, ended.error_code) == ("failed", "interrupted")

        # Its worker still spins here: a cancel stops it, and a `wait` here is woken when
        # the driver lets the run go, though the final move was the other process's.
        answer: list[Any] = []
        queue = extensions.run_queue(driving)
        waiter = threading.Thread(target=lambda: answer.append(queue.wait(run_id, 120)))
        waiter.start()
        queue.cancel(run_id)
        waiter.join(60)
        assert not waiter.is_alive(), "the wait was not woken when the driver let the run go"
        assert [(run["status"], run["error"]["code"]) for run in answer] == [
            ("failed", "interrupted")]
    finally:
        extensions.run_queue(driving).cancel(run_id)  # stop its worker
        assert extensions.run_queue(driving).wait(run_id, 30)
        for app in (driving, sweeping):
            extensions.heartbeat(app).stop()
            executor = app.extensions.get("sandbox")
            if executor is not None:
                executor.close()


def test_a_beat_sweeps_only_on_its_turn(tmp_path: Path) -> None:
    """In a cluster one process sweeps per beat (app.distributed.sweep_turns): a beat that
    is refused its turn renews its runs but does not sweep; start-up recovery always does."""
    app = make_app(tmp_path, HEARTBEAT_S=BEAT_S)
    my_turn = threading.Event()
    asked: list[bool] = []

    def turn() -> bool:
        asked.append(my_turn.is_set())
        return my_turn.is_set()

    heartbeat = Heartbeat(
        session_factory=db.session_factory(app),
        lifecycle=extensions.lifecycle(app),
        grants=extensions.grants(app),
        driver_id="turns-test",
        interval_s=BEAT_S,
        turn=turn,
    )
    swept: list[float] = []
    heartbeat.on_tick(lambda: swept.append(time.monotonic()))
    try:
        heartbeat.start()
        assert len(swept) == 1  # start-up recovery, whoever's turn it is
        until(lambda: len(asked) >= 4)
        assert len(swept) == 1  # four beats, none of them its turn
        my_turn.set()
        until(lambda: len(swept) >= 3)
    finally:
        heartbeat.stop()
        extensions.heartbeat(app).stop()


def test_a_run_its_own_process_stopped_driving_is_ended_too(tmp_path: Path) -> None:
    """A run whose driving thread ended without ending it (its outcome could not be stored)
    is not renewed by its process's beat, and that process's own sweep ends it: it was
    left `running` for as long as the process lived."""
    app = make_app(tmp_path, HEARTBEAT_S=BEAT_S)
    run_id = queued_run(app, SPINS)
    heartbeat = extensions.heartbeat(app)
    with app.app_context():  # claimed here, as a driver does, but no thread drives it
        assert extensions.lifecycle(app).start(run_id, driver=heartbeat.driver_id)
    try:
        heartbeat.start()
        until(lambda: row(app, run_id).status != "running", timeout=10 * BEAT_S * 4)
        ended = row(app, run_id)
        assert (ended.status, ended.error_code) == ("failed", "interrupted")
    finally:
        heartbeat.stop()


def test_an_outcome_the_database_refuses_is_given_up_and_one_kept_is_named_at_stop(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An outcome kept past an outage (`keep_unstored`) keeps its run driven here until it
    is written; one the database refuses for another reason than its state is given up on
    (the run then ends as its process's orphan), and a process that stops with one still
    kept names its run."""
    app = make_app(tmp_path, HEARTBEAT_S=BEAT_S)
    heartbeat = extensions.heartbeat(app)
    tries: list[str] = []

    def wrong() -> None:
        tries.append("wrong")
        raise IntegrityError("INSERT", {}, Exception("a wrong statement"))

    def never_tried() -> None:
        tries.append("late")

    heartbeat.keep_unstored("refused-run", wrong, what="storing the outcome of refused-run")
    heartbeat.release("refused-run")  # its driver's thread ends: the run stays kept
    assert heartbeat.local_runs() == ["refused-run"]
    heartbeat.beat()
    assert tries == ["wrong"]
    assert heartbeat.local_runs() == []
    assert "storing the outcome of refused-run failed; the run is left to the sweep" in caplog.text
    heartbeat.keep_unstored("kept-run", never_tried, what="storing the outcome of kept-run")
    heartbeat.stop()
    assert ("stopping with the outcome of 1 runs not stored, for the database could not "
            "be reached: kept-run") in caplog.text
    assert tries == ["wrong"]


def test_a_run_whose_claim_took_three_beats_is_not_taken_for_dead_by_its_own_sweep(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A claim stamps the run's heartbeat before its statement, and a loaded database may
    commit it three beats later; the run was kept from its own process's sweep only once the
    claim returned, so a sweep in between ended it `interrupted` while its thread went on
    to run it. The claim here is stamped a day early, and this process sweeps right after it
    committed, before it returned."""
    from app import lifecycle as lifecycle_module
    from app.lifecycle import Lifecycle

    app = make_app(tmp_path, HEARTBEAT_S=3600)  # no beat of its own meanwhile
    run_id = queued_run(app, "result = 7")
    heartbeat = extensions.heartbeat(app)
    # The sweep's tick dispatches queued runs, under the lock the claim below is made in.
    monkeypatch.setattr(heartbeat, "_listeners", [])
    claim, swept = Lifecycle.start, []
    real_utcnow = lifecycle_module.utcnow

    def slow_claim(self: Lifecycle, *args: Any, **kwargs: Any) -> Any:
        with monkeypatch.context() as stamped:
            stamped.setattr(lifecycle_module, "utcnow",
                            lambda: real_utcnow() - timedelta(days=1))
            claimed = claim(self, *args, **kwargs)
        heartbeat.sweep()
        swept.append(run_id)
        return claimed

    monkeypatch.setattr(Lifecycle, "start", slow_claim)
    try:
        extensions.run_queue(app).submit(run_id)
        ended = extensions.run_queue(app).wait(run_id, 60)
    finally:
        heartbeat.stop()
    assert swept == [run_id]
    assert ended is not None and (ended["status"], ended["result"]) == ("succeeded", 7), ended
