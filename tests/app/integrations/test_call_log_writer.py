"""The call-log writer: rows land in the database; on PostgreSQL their commit does not wait
for the WAL, and that setting ends with their transaction (a run's moves on the same
pooled connection still wait for it)."""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.integrations.call_log import CallLogWriter
from app.integrations.quota import COUNTED, calls_this_month, counts_as_usage
from app.models import CallLog
from app.models._types import utcnow
from tests.conftest import create_facility


def _row(facility_id: int, path: str, **fields: Any) -> dict[str, Any]:
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
        **fields,
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


# (status, error_code, integration_id) of call-log rows, and whether each is usage.
USAGE_ROWS = [
    (200, None, 1, True),
    (500, None, 1, True),  # the service answered
    (429, "rate_limited", 1, True),
    (None, "integration_timeout", 1, True),  # sent, no answer in time
    (None, "integration_unavailable", 1, True),  # sent, the connection broke
    (None, "integration_unavailable", None, False),  # switched off: never sent
    (None, "quota_exceeded", 1, False),
    (None, "unknown_integration", None, False),
    (None, "forbidden_destination", 1, False),
    (None, "no_integration_grant", 1, False),
    (None, "invalid_request", 1, False),
    (None, "vault_error", 1, False),
]
# The same of `integrations.require` rows: a wait for a sign-in, never a request sent,
# whatever its error (the integration switched off while it waited, after a refresh failed).
REQUIRE_ROWS = [
    (None, None, 1, False),
    (None, "no_integration_grant", 1, False),
    (None, "integration_unavailable", 1, False),
]


def test_the_writers_pending_rows_and_the_database_count_usage_by_one_rule(
    app: Flask, session: Session
) -> None:
    facility_id = create_facility(session, slug="lab").id
    session.commit()
    rows = [
        _row(facility_id, f"/{n}", status=status, error_code=error, integration_id=integration,
             method=method)
        for n, (method, (status, error, integration, _usage)) in enumerate(
            [("GET", row) for row in USAGE_ROWS] + [("require", row) for row in REQUIRE_ROWS]
        )
    ]
    assert [counts_as_usage(row) for row in rows] == [
        usage for *_, usage in USAGE_ROWS + REQUIRE_ROWS
    ]
    engine = create_engine(app.config["DATABASE_URL"])
    written = threading.Event()  # the writer's session waits for it: the rows stay pending

    def held_session() -> Session:
        assert written.wait(10)
        return Session(engine)

    writer = CallLogWriter(held_session)
    try:
        for row in rows:
            writer.write(dict(row))
        assert writer.pending(facility_id) == 5  # the quota's in-flight part: usage only
        written.set()
        writer.flush()
        assert writer.pending(facility_id) == 0
        with Session(engine) as reading:
            assert calls_this_month(reading, facility_id) == 5
            usage = reading.scalars(
                select(CallLog.path).where(CallLog.facility_id == facility_id, COUNTED)
            ).all()
            assert sorted(usage) == sorted(row["path"] for row in rows if counts_as_usage(row))
            assert reading.scalar(select(func.count(CallLog.id))) == len(rows)
    finally:
        written.set()
        writer.close(timeout=10)
        engine.dispose()
