"""The call-log writer: rows land in the database; on PostgreSQL their commit does not wait
for the WAL, and that setting ends with their transaction (a run's moves on the same
pooled connection still wait for it)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.integrations.call_log import CallLogWriter
from app.models import CallLog
from app.models._types import utcnow
from tests.conftest import create_facility


def _row(facility_id: int, path: str) -> dict[str, Any]:
    return {
        "run_id": None,
        "script_id": None,
        "user_id": None,
        "facility_id": facility_id,
        "integration_id": None,
        "integration_key": "keyed",
        "account_kind": None,
        "account_id": None,
        "method": "GET",
        "path": path,
        "status": 200,
        "duration_ms": 1.5,
        "wait_ms": None,
        "error_code": None,
        "created_at": utcnow(),
    }


def test_rows_are_written_and_only_their_own_commit_skips_the_wal_wait(
    app: Flask, session: Session
) -> None:
    facility_id = create_facility(session, slug="lab").id
    session.commit()
    # One pooled connection: whatever the writer leaves on it, the next user gets.
    engine = create_engine(app.config["DATABASE_URL"], pool_size=1, max_overflow=0)
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    writer = CallLogWriter(sessionmaker(engine))
    try:
        for path in ("/a", "/b", "/c"):
            writer.write(_row(facility_id, path))
        writer.flush()
        assert writer.pending(facility_id) == 0
        with engine.connect() as connection:
            paths = connection.scalars(
                select(CallLog.path).where(CallLog.facility_id == facility_id).order_by(CallLog.id)
            ).all()
            assert paths == ["/a", "/b", "/c"]
            connection.rollback()
            if engine.dialect.name == "postgresql":
                assert any("synchronous_commit" in sql for sql in seen), seen
                # SET LOCAL: a run's move after it, on the same connection, still waits.
                assert connection.scalar(text("SHOW synchronous_commit")) == "on"
            else:
                assert not any("synchronous_commit" in sql for sql in seen), seen
    finally:
        engine.dispose()


def test_close_writes_what_is_queued_and_ends_the_thread(app: Flask, session: Session) -> None:
    facility_id = create_facility(session, slug="lab").id
    session.commit()
    engine = create_engine(app.config["DATABASE_URL"])
    writer = CallLogWriter(sessionmaker(engine))
    try:
        for path in ("/a", "/b"):
            writer.write(_row(facility_id, path))
        thread = writer._thread
        assert thread is not None and thread.is_alive()
        writer.close(timeout=10)  # rows still in their batch window: written, not dropped
        assert not thread.is_alive()
        writer.write(_row(facility_id, "/c"))  # a writer closed too early still writes
        writer.close(timeout=10)
        with engine.connect() as connection:
            paths = connection.scalars(
                select(CallLog.path).where(CallLog.facility_id == facility_id).order_by(CallLog.id)
            ).all()
        assert paths == ["/a", "/b", "/c"]
        assert writer.pending(facility_id) == 0
    finally:
        engine.dispose()


def test_the_servers_shutdown_writes_the_call_log_and_ends_its_thread(
    app: Flask, session: Session
) -> None:
    from app import extensions

    facility_id = create_facility(session, slug="lab").id
    session.commit()
    broker = app.extensions["driver"]._broker()  # built on first use, as a run does
    writer = broker._log_writer
    writer.write(_row(facility_id, "/last"))
    thread = writer._thread
    extensions.shutdown(app, timeout=10)
    assert thread is not None and not thread.is_alive()
    assert session.scalars(
        select(CallLog.path).where(CallLog.facility_id == facility_id)
    ).all() == ["/last"]
