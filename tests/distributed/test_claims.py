"""A Celery worker's claim on PostgreSQL (DESIGN §7, migration 0013): one statement that
takes the user's and facility's row locks and counts their live runs after taking them,
so claims racing for the last slots never take more than the cap.

The claims race from threads of one Celery-mode app, as the processes of several workers
would; no Celery worker runs, so nothing ends a claimed run meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select, update

from app import db, extensions
from app.lifecycle import RunStatus
from app.models import Role, Run
from app.services.context import MemberContext
from app.services.scripts import create_run
from app.testing import RoundTrips
from tests.conftest import add_member, create_facility, create_user, stop_app
from tests.distributed.conftest import celery_app

pytestmark = pytest.mark.postgres
PER_USER = 2
RACERS = 8
ROUNDS = 5


@pytest.fixture
def app(tmp_path: Path, postgres_url: str, redis_prefix: str) -> Iterator[Flask]:
    application = celery_app(tmp_path, postgres_url, redis_prefix, MAX_RUNS_PER_USER=PER_USER)
    yield application
    stop_app(application)


def queued_runs(app: Flask, count: int) -> list[str]:
    """`count` queued runs of one scripter."""
    with app.app_context():
        session = db.session()
        user = create_user(session)
        facility = create_facility(session)
        add_member(session, user=user, facility=facility, role=Role.scripter)
        member = MemberContext(user, facility, Role.scripter)
        runs = [
            create_run(session, member, script_id=None, source="result = 1", run_input=None,
                       interactive=False)
            for _ in range(count)
        ]
        session.commit()
        ids = [run.id for run in runs]
    db.session.remove()
    return ids


def live_count(app: Flask) -> int:
    with db.autocommit_engine(app).connect() as connection:
        return int(connection.scalar(
            select(func.count()).select_from(Run).where(Run.status == str(RunStatus.RUNNING))
        ) or 0)


def test_claims_racing_for_the_last_slots_never_pass_the_cap(app: Flask) -> None:
    queue = extensions.celery_queue(app)
    runs = queued_runs(app, RACERS)

    def claim(run_id: str, gate: threading.Barrier, taken: list[str]) -> None:
        gate.wait()
        if queue.worker._claim(run_id) is not None:
            taken.append(run_id)

    for _ in range(ROUNDS):
        gate = threading.Barrier(RACERS)
        taken: list[str] = []
        threads = [
            threading.Thread(target=claim, args=(run_id, gate, taken)) for run_id in runs
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(taken) == PER_USER, taken  # as many as the cap: no more, no fewer
        assert live_count(app) == PER_USER
        with db.autocommit_engine(app).connect() as connection:  # the next round
            connection.execute(
                update(Run).where(Run.id.in_(runs)).values(status=str(RunStatus.QUEUED))
            )


def test_a_claim_is_one_statement_that_commits_as_it_runs(app: Flask) -> None:
    queue = extensions.celery_queue(app)
    first, second, third = queued_runs(app, 3)
    with RoundTrips(db.engine_of(app)) as claims:
        assert queue.worker._claim(first) is not None and queue.worker._claim(second) is not None
        assert queue.worker._claim(third) is None  # the cap: declined, and nothing was held
    writes = [sql.split()[0] for sql in claims.statements]
    assert writes == ["UPDATE", "UPDATE", "UPDATE"], claims.statements
    assert claims.counts.get("web_commits", 0) == 0  # autocommit: no COMMIT round trip
    assert live_count(app) == PER_USER


def test_a_claim_that_took_three_beats_is_no_orphan_to_its_own_processs_sweep(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """A claim stamps the run's heartbeat before its statement, which a loaded database may
    commit three beats later; the run was kept from its process's sweep only once driving
    began, so a sweep in between ended it `interrupted` (app.runner.heartbeat's claiming).
    The claim here is stamped a day early and the process sweeps right after it committed."""
    from app import lifecycle as lifecycle_module
    from app.lifecycle import Lifecycle

    queue = extensions.celery_queue(app)
    heartbeat = extensions.heartbeat(app)
    (run_id,) = queued_runs(app, 1)
    monkeypatch.setattr(heartbeat, "_listeners", [])  # its tick would dispatch: not here
    claim, real_utcnow, swept = Lifecycle.start, lifecycle_module.utcnow, []

    def slow_claim(self: Lifecycle, *args: object, **kwargs: object) -> object:
        with monkeypatch.context() as stamped:
            stamped.setattr(lifecycle_module, "utcnow",
                            lambda: real_utcnow() - timedelta(days=1))
            claimed = claim(self, *args, **kwargs)  # type: ignore[arg-type]
        heartbeat.sweep()
        swept.append(run_id)
        return claimed

    monkeypatch.setattr(Lifecycle, "start", slow_claim)
    assert queue.worker._claim(run_id) is not None
    assert swept == [run_id]
    assert live_count(app) == 1  # still running: not ended `interrupted`
    assert heartbeat.local_runs() == [run_id]  # driven here, cancellable
    heartbeat.release(run_id)
