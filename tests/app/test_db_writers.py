"""SQLite writers of one process queue on a lock instead of meeting SQLITE_BUSY: the next
writer goes when the first one's transaction ends, however it ends."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from app import db


@pytest.mark.parametrize("end", ["commit", "rollback", "close"])
def test_a_second_writer_waits_for_the_first_instead_of_failing(tmp_path: Path, end: str) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'writers.db'}")
    try:
        with engine.begin() as setup:
            setup.execute(text("CREATE TABLE t (x INTEGER)"))
        first = engine.connect()
        first.execute(text("INSERT INTO t VALUES (1)"))  # holds SQLite's write lock
        written: list[int] = []
        failures: list[BaseException] = []

        def second_writer() -> None:
            try:
                with engine.connect() as second:
                    # SQLite alone would refuse this writer at once ("database is locked").
                    second.exec_driver_sql("PRAGMA busy_timeout = 0")
                    second.execute(text("INSERT INTO t VALUES (2)"))
                    second.commit()
                    written.append(2)
            except BaseException as failure:  # reported below
                failures.append(failure)

        writer = threading.Thread(target=second_writer)
        writer.start()
        writer.join(0.5)
        assert writer.is_alive() and not failures, failures  # queued behind the first
        ends: dict[str, object] = {
            "commit": first.commit, "rollback": first.rollback, "close": first.close}
        ends[end]()
        writer.join(30)
        assert not failures and written == [2]
        with engine.connect() as check:
            rows = sorted(check.execute(text("SELECT x FROM t")).scalars())
        assert rows == ([1, 2] if end == "commit" else [2])
        if not first.closed:
            first.close()
    finally:
        engine.dispose()


def test_readers_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'readers.db'}")
    try:
        with engine.begin() as setup:
            setup.execute(text("CREATE TABLE t (x INTEGER)"))
            setup.execute(text("INSERT INTO t VALUES (1)"))
        writer: Connection = engine.connect()
        writer.execute(text("INSERT INTO t VALUES (2)"))
        with engine.connect() as reader:  # WAL: the committed rows, at once
            assert list(reader.execute(text("SELECT x FROM t")).scalars()) == [1]
        writer.commit()
        writer.close()
    finally:
        engine.dispose()
