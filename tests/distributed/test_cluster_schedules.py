"""Scheduled runs in a real cluster (DESIGN §7): two web processes of two gunicorn workers
each and a Celery worker of two processes all tick on PostgreSQL and Redis, each of them
free to fire due schedules; every due schedule still starts exactly one run, which
executes on the Celery worker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import db
from app.lifecycle import is_final
from app.models import Schedule
from app.models._types import utcnow
from app.services import schedules
from tests.distributed.cluster import Cluster, Process, await_tasks, seeded_cluster
from tests.distributed.conftest import echo_scripter, runs_where

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]
SECRET_KEY = "cluster-schedules-session-key"
DUE = 6
RUN_TASK = "scriptbox.run["


@dataclass(frozen=True)
class World:
    """A migrated PostgreSQL database with DUE schedules due now, and a cluster on it."""

    app: Flask
    schedule_ids: list[int]
    cluster: Cluster


@pytest.fixture
def world(tmp_path: Path, postgres_url: str, redis_prefix: str) -> Iterator[World]:
    def seed(session: Session) -> list[int]:
        member, script = echo_scripter(session)
        # Yearly, set up a year ago: each is due now, once, and not again while the test
        # runs (an every-five-minutes one fired twice when the test crossed its next time).
        made = [
            schedules.create_schedule(session, member, script, cron="0 0 1 1 *",
                                      run_input={"n": n},
                                      now=utcnow() - timedelta(days=366))
            for n in range(DUE)
        ]
        return [schedule.id for schedule in made]

    with seeded_cluster(tmp_path, postgres_url, redis_prefix, SECRET_KEY, seed) as (
            app, ids, cluster):
        yield World(app=app, schedule_ids=ids, cluster=cluster)


def test_each_due_schedule_fires_once_across_the_cluster_and_runs_on_a_worker(
    world: World,
) -> None:
    cluster = world.cluster
    # The web processes first: their four gunicorn workers' start-up sweeps race for the
    # due schedules; the runs wait queued for the worker.
    for _ in range(2):
        cluster.web(workers=2)
    worker = cluster.worker(concurrency=2)
    processes: list[Process] = list(cluster.processes)

    deadline = time.monotonic() + 120
    while sum(is_final(run.status) for run in runs_where(world.app)) < DUE:
        assert time.monotonic() < deadline, [p.output() for p in processes]
        worker.await_line(0.5)
    runs = runs_where(world.app)
    assert sorted(run.schedule_id for run in runs) == sorted(world.schedule_ids), [
        (run.schedule_id, run.status) for run in runs]
    assert {(run.status, run.interactive) for run in runs} == {("succeeded", False)}
    assert sorted(run.result["n"] for run in runs) == list(range(DUE))
    # Every run went through the Celery queue to the worker (the web processes drive none);
    # a task's line comes after its run's row was finished, so it may still be on its way.
    await_tasks([worker], RUN_TASK, count=DUE)
    # Each moved to its next due time in the future: none can fire again before then.
    with world.app.app_context():
        for schedule in db.session.scalars(select(Schedule)):
            assert schedule.next_run_at is not None and schedule.next_run_at > utcnow()
            assert schedule.last_run_id in {run.id for run in runs}
    db.session.remove()
