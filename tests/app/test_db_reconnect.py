"""A pooled connection the database server dropped while it sat idle is replaced before
use (pinged when idle for longer than `PING_AFTER_IDLE_S`), and one used moments ago
is not pinged at all; which errors count as the database out of reach."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import OperationalError

from app import db


def backend_pid(engine: object) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.mark.postgres
def test_a_connection_dropped_while_idle_is_replaced(postgres_url: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    engine = db.make_engine(postgres_url, pool_size=1, max_overflow=0)
    try:
        first = backend_pid(engine)
        with engine.connect() as admin_side:  # the only pooled one is checked in: reuse it
            assert int(admin_side.execute(text("SELECT pg_backend_pid()")).scalar_one()) == first
        other = db.make_engine(postgres_url, pool_size=1, max_overflow=0)
        with other.connect() as killer:  # the server ends the idle session (a restart would)
            ended = killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            assert ended.scalar()
            killer.commit()
        other.dispose()
        monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)  # it has been idle long enough
        assert backend_pid(engine) != first  # a fresh connection, no error
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_connection_used_moments_ago_is_not_pinged(postgres_url: str) -> None:
    engine = db.make_engine(postgres_url, pool_size=1, max_overflow=0)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_: statements.append(statement))
    pings: list[object] = []
    original = engine.dialect.do_ping
    def counted_ping(connection: object) -> bool:
        pings.append(connection)
        return original(connection)

    engine.dialect.do_ping = counted_ping  # type: ignore[method-assign]
    try:
        backend_pid(engine)
        backend_pid(engine)
        assert pings == []  # checked in just now: taken as alive
        assert statements == ["SELECT pg_backend_pid()"] * 2
    finally:
        engine.dispose()


def test_only_errors_of_reach_count_as_unreachable(tmp_path: Path) -> None:
    """SQLite reports a missing table as an OperationalError too: that is a wrong statement
    (a 500, not tried again), where a lock held too long is worth another try."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'x.sqlite'}")
    try:
        with pytest.raises(OperationalError) as wrong, engine.connect() as connection:
            connection.execute(text("SELECT * FROM no_such_table"))
        assert not db.unreachable(wrong.value)
        holder = sqlite3.connect(tmp_path / "x.sqlite")
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(OperationalError) as busy, create_engine(
                f"sqlite:///{tmp_path / 'x.sqlite'}", connect_args={"timeout": 0.05}
        ).connect() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
        holder.rollback()
        holder.close()
        assert db.unreachable(busy.value)
    finally:
        engine.dispose()
