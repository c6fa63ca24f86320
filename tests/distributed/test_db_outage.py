"""PostgreSQL out of reach for seconds under a running cluster (a restart, a failover):
runs that were calling out keep their outcome and their calls, queued runs run once it is
back, requests meanwhile get a 503 in words, and no process takes the silent runs of
another for dead (the outage is shared on Redis: app.distributed.sweep_turns.Outages)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app import db
from app.models import CallLog, Run
from tests.app.test_database_outage import CALLS_SLOW, UPSTREAM_S, Upstream, upstream
from tests.conftest import auth_less_lab, database_cut
from tests.distributed.cluster import seeded_cluster
from tests.distributed.test_cluster import client, run_row, start_run, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]
__all__ = ["upstream"]  # the fixture


def test_a_database_outage_loses_no_run(tmp_path: Path, postgres_url: str,
                                        redis_prefix: str, upstream: Upstream) -> None:
    with seeded_cluster(tmp_path, postgres_url, redis_prefix, "outage-key",
                        auth_less_lab(upstream.url)) as (app, user_id, cluster):
        world: dict[str, Any] = {"app": app, "user_id": user_id}
        _web, url = cluster.web()
        cluster.worker(concurrency=2)
        browser = client(world, url)
        # Two call out; two wait in the queue for a slot.
        calling = [start_run(browser, CALLS_SLOW) for _ in range(4)]
        # Both calls are out before the cut (a fixed 1 s may not be enough for the worker
        # to take them on a loaded machine, and a cut before a run's call went out ends the
        # run `interrupted`); they come back during it.
        upstream.came(2)
        with database_cut(postgres_url):
            meanwhile = browser.api("GET", "/api/f/lab/runs")
            time.sleep(UPSTREAM_S * 2)  # the calls came back; three beats passed many times
        assert meanwhile.status_code == 503, meanwhile.text
        assert meanwhile.json()["error"]["code"] == "database_unavailable"

        after = start_run(browser, "result = 'after'")
        def ended(run_id: str) -> Run:
            return wait_until(lambda: run_row(world, run_id),
                              lambda run: run.status not in ("queued", "running"), timeout=90)

        outcomes = [(run.status, run.error_code, run.result) for run in map(ended, calling)]
        assert outcomes == [("succeeded", None, True)] * len(calling)  # none `interrupted`
        assert (ended(after).status, ended(after).result) == ("succeeded", "after")
        with app.app_context():  # every call is in the usage
            logged = db.session.scalar(select(func.count()).select_from(CallLog).where(
                CallLog.run_id.in_(calling)))
            assert logged == len(calling)
        db.session.remove()
