"""The run lifecycle: allowed transitions only, conditional moves, one event per move."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import db, extensions
from app.errors import IllegalTransition
from app.lifecycle import FINAL, TRANSITIONS, Lifecycle, RunStatus
from app.models import Facility, Role, Run, User
from app.models._types import utcnow
from app.runner.driver import DRIVEN_COLUMNS
from app.services.context import MemberContext
from app.services.scripts import create_run
from app.testing import RoundTrips
from tests.conftest import add_member, create_facility, create_user, make_app


def queued_run(session: Session) -> Run:
    user = create_user(session)
    facility = create_facility(session)
    add_member(session, user=user, facility=facility, role="scripter")
    run = create_run(
        session,
        MemberContext(user, facility, Role.scripter),
        script_id=None,
        source="result = 1",
        run_input=None,
        interactive=False,
    )
    session.commit()
    return run


def status_of(run_id: str) -> str:
    db.session.expire_all()
    run = db.session.get(Run, run_id)
    assert run is not None
    return run.status


def test_final_states_have_no_way_out_and_every_other_state_has_one() -> None:
    assert not FINAL & set(TRANSITIONS)
    assert set(TRANSITIONS) == set(RunStatus) - FINAL


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (RunStatus.QUEUED, RunStatus.SUCCEEDED),
        (RunStatus.QUEUED, RunStatus.PARKED),
        (RunStatus.PARKED, RunStatus.SUCCEEDED),
        (RunStatus.PARKED, RunStatus.WAITING),
        (RunStatus.SUCCEEDED, RunStatus.RUNNING),
        (RunStatus.CANCELLED, RunStatus.QUEUED),
    ],
)
def test_a_transition_the_table_lacks_is_refused(
    app: Flask, session: Session, source: RunStatus, target: RunStatus
) -> None:
    run = queued_run(session)
    with pytest.raises(IllegalTransition, match=f"from {source} to {target}"):
        extensions.lifecycle().move(run.id, source=(source,), target=target)
    assert status_of(run.id) == "queued"


def test_a_move_from_a_state_the_run_is_not_in_changes_nothing(
    app: Flask, session: Session
) -> None:
    run = queued_run(session)
    lifecycle = extensions.lifecycle()
    assert lifecycle.unpause(run.id) is False  # it is not waiting
    assert lifecycle.resume(run.id, driver="x") is None  # it is not parked
    assert status_of(run.id) == "queued"
    assert lifecycle.start(run.id, driver="x") is not None
    assert lifecycle.start(run.id, driver="y") is None  # already started
    assert status_of(run.id) == "running"


def test_a_claim_returns_what_its_driver_reads_so_the_run_is_not_read_again(
    app: Flask, session: Session
) -> None:
    run = queued_run(session)
    with RoundTrips(db.engine_of(app)) as claim:
        claimed = extensions.lifecycle().start(run.id, driver="x", returning=DRIVEN_COLUMNS)
    assert claimed is not None and len(claim.statements) == 1
    with db.engine_of(app).connect() as connection:
        read = connection.execute(select(*DRIVEN_COLUMNS).where(Run.id == run.id)).one()
    assert claimed._mapping == read._mapping
    assert claimed.source == "result = 1" and claimed.journal is None
    user, facility = session.get(User, run.user_id), session.get(Facility, run.facility_id)
    assert user is not None and facility is not None
    assert (claimed.user_email, claimed.facility_slug) == (user.email, facility.slug)


def test_two_processes_racing_to_start_one_run_cannot_both_win(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_app(tmp_path / "a")
    database = first.config["DATABASE_URL"]
    second = make_app(tmp_path / "b", DATABASE_URL=database)  # its own engine, same rows
    with first.app_context():
        run_id = queued_run(db.session()).id
    contenders = [extensions.lifecycle(first), extensions.lifecycle(second)] * 4
    barrier = threading.Barrier(len(contenders))
    wins: list[bool] = []

    def contend(lifecycle: Lifecycle, driver: str) -> None:
        barrier.wait()
        wins.append(lifecycle.start(run_id, driver=driver) is not None)

    threads = [
        threading.Thread(target=contend, args=(lc, f"driver-{n}"))
        for n, lc in enumerate(contenders)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * (len(contenders) - 1) + [True]


def test_every_move_is_told_to_the_runs_pages_once(app: Flask, session: Session) -> None:
    run = queued_run(session)
    page = extensions.bus().subscribe(run.user_id, run.facility_id)
    lifecycle = extensions.lifecycle()
    assert lifecycle.start(run.id, driver="here")
    assert page.get(timeout=1) == {"type": "run.status", "run_id": run.id, "status": "running"}
    a_minute_ago = utcnow() - timedelta(minutes=1)
    assert lifecycle.interrupt(run.id, stale_before=a_minute_ago) is False  # its beat is fresh
    assert lifecycle.finish(
        run.id, target=RunStatus.SUCCEEDED, values={"result": 7, "output": "", "calls": 0}
    )
    finished = page.get(timeout=1)
    assert finished is not None and finished["type"] == "run.finished"
    assert finished["run"]["status"] == "succeeded" and finished["run"]["result"] == 7
    assert page.get(timeout=0.05) is None
    page.close()


def test_a_move_alone_commits_as_it_runs_and_a_claim_keeps_its_transaction(
    app: Flask, session: Session
) -> None:
    """On a server database a one-statement move needs no BEGIN and COMMIT round trips;
    a move with work before it (a claim's row locks) stays one transaction."""
    run = queued_run(session)
    lifecycle = extensions.lifecycle()
    server = db.engine_of(app).dialect.name != "sqlite"
    locked: list[bool] = []
    with RoundTrips(db.engine_of(app)) as claim:
        assert lifecycle.start(run.id, driver="here",
                               before=lambda connection: locked.append(connection.in_transaction()))
    assert locked == [True] and claim.counts.get("web_commits") == 1
    with RoundTrips(db.engine_of(app)) as finish:
        assert lifecycle.finish(run.id, target=RunStatus.SUCCEEDED,
                                values={"result": 1, "output": "", "calls": 0})
    # One write (the webhooks may look up whether the facility has any endpoints).
    assert [s.split()[0] for s in finish.statements if not s.startswith("SELECT")] == ["UPDATE"]
    assert finish.counts.get("web_commits", 0) == (0 if server else 1)
    assert status_of(run.id) == "succeeded"  # seen from another connection


def test_autocommit_connections_go_back_to_the_pool_transactional(app: Flask) -> None:
    """The reads' and single statements' connections come from the app's one pool: each
    must return to it in transaction mode, or a later transaction would commit statement
    by statement (and a rollback would undo nothing)."""
    with db.autocommit_engine(app).connect() as connection:
        raw = connection.connection.dbapi_connection
        assert _autocommits(raw)
        connection.execute(select(Run.id)).all()
    engine = db.engine_of(app)
    held = [engine.connect() for _ in range(max(1, engine.pool.checkedin()))]  # type: ignore[attr-defined]
    try:
        raws = [connection.connection.dbapi_connection for connection in held]
        assert raw in raws  # the one that autocommitted is among them
        assert not any(_autocommits(each) for each in raws)
    finally:
        for connection in held:
            connection.close()


def _autocommits(raw: Any) -> bool:
    # psycopg says so; sqlite3 autocommits when it opens no transactions itself.
    return bool(raw.autocommit) if hasattr(raw, "pgconn") else raw.isolation_level is None
