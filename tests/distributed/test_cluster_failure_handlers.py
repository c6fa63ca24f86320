"""On-failure scripts in a real cluster: a web process of two gunicorn workers and a
Celery worker of two processes on PostgreSQL and Redis. Each schedule's failed run is
retried on the worker (its schedule allows one retry), the retry fails too, and that end,
written by the worker, starts the schedule's on-failure script there exactly once, with
the retry's failure as its input. The first failures are seeded as having ended an hour
ago, so their retries are due when the cluster starts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from app.lifecycle import is_final
from app.models import Run
from app.services.scripts import create_script
from tests.distributed.cluster import Cluster, Process, seeded_cluster
from tests.distributed.conftest import echo_scripter, failed_schedule_runs, runs_where

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]
SECRET_KEY = "cluster-failure-handlers-session-key"
SCHEDULES = 2


@dataclass(frozen=True)
class World:
    """SCHEDULES schedules of a failing script, each naming Echo as its on-failure script,
    whose last run failed an hour ago; a cluster on them."""

    app: Flask
    failed: dict[str, int]  # failed run id -> its schedule's id
    echo_id: int
    cluster: Cluster


@pytest.fixture
def world(tmp_path: Path, postgres_url: str, redis_prefix: str) -> Iterator[World]:
    def seed(session: Session) -> tuple[dict[str, int], int]:
        member, echo = echo_scripter(session)
        flaky = create_script(session, member, name="Flaky", published=True,
                              source="raise ValueError('upstream answered 502')")
        failed = failed_schedule_runs(session, member, flaky, SCHEDULES,
                                      error_code="script_error", on_failure_script_id=echo.id)
        return failed, echo.id

    with seeded_cluster(tmp_path, postgres_url, redis_prefix, SECRET_KEY, seed) as (
            app, seeded, cluster):
        failed, echo_id = seeded
        yield World(app=app, failed=failed, echo_id=echo_id, cluster=cluster)


def test_a_retry_that_fails_on_a_worker_starts_the_handler_once(world: World) -> None:
    cluster = world.cluster
    cluster.web(workers=2)
    worker = cluster.worker(concurrency=2)
    processes: list[Process] = list(cluster.processes)

    deadline = time.monotonic() + 120
    while sum(is_final(run.status) for run in runs_where(
            world.app, Run.trigger == "on_failure")) < SCHEDULES:
        assert time.monotonic() < deadline, [p.output() for p in processes]
        worker.await_line(0.5)
    retries = {run.id: run for run in runs_where(world.app, Run.attempt == 2)}
    assert {run.retry_of: run.schedule_id for run in retries.values()} == world.failed
    assert {run.status for run in retries.values()} == {"failed"}
    # Ticks and ends went on meanwhile: one handler run for each failed retry.
    handlers = runs_where(world.app, Run.trigger == "on_failure")
    assert sorted(run.handles_run_id for run in handlers) == sorted(retries)  # type: ignore[type-var]
    for run in handlers:
        failed = retries[run.handles_run_id]  # type: ignore[index]
        assert (run.status, run.script_id, run.schedule_id, run.interactive) == (
            "succeeded", world.echo_id, None, False)
        assert run.result["run_id"] == failed.id
        assert (run.result["schedule_id"], run.result["attempt"], run.result["error_code"],
                run.result["script_name"]) == (failed.schedule_id, 2, "script_error", "Flaky")
