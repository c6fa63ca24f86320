"""The web server's database pool fits its threads (issue 10, item 4): with every request
thread and the background threads holding a connection at once, none waits for one."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from app import db
from tests.conftest import make_app


@pytest.mark.postgres
def test_every_thread_gets_a_connection_at_once(tmp_path: Path, postgres_url: str) -> None:
    # Configured far too small for the server's threads: serving fits it.
    app = make_app(tmp_path, DATABASE_URL=postgres_url, DATABASE_POOL_SIZE=2,
                   DATABASE_MAX_OVERFLOW=1)
    threads = 12
    ceiling = db.fit_pool(app, threads=threads)
    assert ceiling == threads + db.BACKGROUND_CONNECTIONS
    holders = threads + db.BACKGROUND_CONNECTIONS
    # Each holder keeps its connection until all hold one: a pool smaller than that would
    # leave some waiting past the barrier's timeout.
    barrier = threading.Barrier(holders, timeout=60)
    failures: list[BaseException] = []

    def hold() -> None:
        try:
            with db.session_factory(app)() as session:
                session.execute(text("SELECT 1"))
                barrier.wait()
        except BaseException as exc:  # reported below
            failures.append(exc)

    workers = [threading.Thread(target=hold) for _ in range(holders)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(90)
    assert failures == []
    with db.session_factory(app)() as session:  # the app's sessions use the fitted pool
        assert session.get_bind() is db.engine_of(app)
    db.engine_of(app).dispose()


@pytest.mark.sqlite_only  # an app on SQLite, whatever --databases says
def test_sqlite_has_no_pool_to_fit(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    assert db.fit_pool(app, threads=32) == 0
