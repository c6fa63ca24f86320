"""Retries of failed scheduled runs in a real cluster: a web process of two gunicorn
workers and a Celery worker of two processes all tick on PostgreSQL and Redis, each free
to start due retries; each failed run is retried exactly once (its schedule allows one),
and the retry runs on the Celery worker. The failures are seeded as having ended an hour
ago, so their retries are due when the cluster starts: nothing waits for the delay."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import db
from app.lifecycle import is_final
from app.models import Run, Schedule
from tests.distributed.cluster import Cluster, Process, await_tasks, seeded_cluster
from tests.distributed.conftest import echo_scripter, failed_schedule_runs, runs_where

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]
SECRET_KEY = "cluster-retries-session-key"
FAILED = 4
RUN_TASK = "scriptbox.run["


@dataclass(frozen=True)
class World:
    """FAILED schedules whose last run failed an hour ago, and a cluster on them."""

    app: Flask
    failed: dict[str, int]  # failed run id -> its schedule's id
    cluster: Cluster


@pytest.fixture
def world(tmp_path: Path, postgres_url: str, redis_prefix: str) -> Iterator[World]:
    def seed(session: Session) -> dict[str, int]:
        member, script = echo_scripter(session)
        return failed_schedule_runs(session, member, script, FAILED,
                                    error_code="integration_unavailable")

    with seeded_cluster(tmp_path, postgres_url, redis_prefix, SECRET_KEY, seed) as (
            app, failed, cluster):
        yield World(app=app, failed=failed, cluster=cluster)


def test_each_failed_run_is_retried_once_across_the_cluster_on_a_worker(world: World) -> None:
    cluster = world.cluster
    cluster.web(workers=2)
    worker = cluster.worker(concurrency=2)
    processes: list[Process] = list(cluster.processes)

    deadline = time.monotonic() + 120
    while sum(is_final(run.status) for run in runs_where(world.app, Run.attempt == 2)) < FAILED:
        assert time.monotonic() < deadline, [p.output() for p in processes]
        worker.await_line(0.5)
    await_tasks([worker], RUN_TASK, count=FAILED)
    # Ticks went on meanwhile: still one retry each.
    retries = runs_where(world.app, Run.attempt == 2)
    assert sorted(run.retry_of for run in retries) == sorted(world.failed)  # type: ignore[type-var]
    assert {run.retry_of: run.schedule_id for run in retries} == world.failed
    assert {(run.status, run.trigger, run.interactive) for run in retries} == {
        ("succeeded", "schedule", False)}
    with world.app.app_context():
        for schedule in db.session.scalars(select(Schedule)):
            assert schedule.last_run_id in {run.id for run in retries}
    db.session.remove()
