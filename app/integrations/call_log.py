"""The call log: what one integration call records (`CallLogEntry`), and the writer that
takes the rows to the database from a background thread, in batches."""

from __future__ import annotations

import collections
import functools
import logging
import math
import queue
import threading
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Table, insert, text, update
from sqlalchemy.orm import Session

from app import db
from app.integrations.call_context import RunContext
from app.integrations.quota import Admission, counts_as_usage
from app.models import Account, CallLog
from app.models._types import storable, utcnow

log = logging.getLogger(__name__)
_LOG_BATCH_WINDOW_S = 0.05
_STOP: dict[str, Any] = {}  # queued by close(): the writer's thread ends there
# A Core INSERT of the table: the ORM's bulk path cost more than the statement.
_INSERT_ROWS = insert(cast(Table, CallLog.__table__))
# The rows are written behind the calls already (a process that dies loses its last
# window of them), so their commit does not wait for PostgreSQL's WAL to reach the disk:
# a database crash may lose the last fraction of a second of them too, never corrupt
# them. That wait was the commonest one in a busy cluster, on every run's path (the
# run is reported once its calls are logged).
_NO_WAL_WAIT = text("SET LOCAL synchronous_commit TO OFF")


class CallLogEntry:
    """What the call log records about one integration call, filled in by the broker as
    the call proceeds."""

    def __init__(self, ctx: RunContext, service: str, method: str, started: float) -> None:
        self.ctx = ctx
        self.service = service
        self.method = method
        self.integration_id: int | None = None
        self.account_id: int | None = None
        self.account_kind: str | None = None
        self.path = ""
        self.status: int | None = None
        self.error: str | None = None
        self.parked = False
        self.started = started
        # Time spent waiting for a person to sign in: logged apart from the call's own time.
        self.waited: float | None = None
        # Part of it spent before this call began (a resumed run's wait before its park).
        self.waited_before = 0.0
        self.admission: Admission | None = None  # its place in the quota count, once checked

    def add_wait(self, seconds: float) -> None:
        """Count `seconds` spent asking a person to sign in."""
        self.waited = (self.waited or 0.0) + seconds

    def add_wait_before(self, seconds: float) -> None:
        """Count `seconds` a person was asked before this call began (the run parked then)."""
        self.add_wait(seconds)
        self.waited_before += seconds

    def row(self, now: float) -> dict[str, Any]:
        """The call-log row; `now` is on the clock `started` was read from."""
        elapsed = now - self.started + self.waited_before
        return {
            "run_id": self.ctx.run_id,
            "script_id": self.ctx.script_id,
            "user_id": self.ctx.user_id,
            "facility_id": self.ctx.facility_id,
            "integration_id": self.integration_id,
            "integration_key": storable(self.service) or "?",
            "account_kind": self.account_kind,
            "account_id": self.account_id,
            "method": storable(self.method) or "?",
            "path": storable(self.path),
            "status": self.status,
            "duration_ms": round((elapsed - (self.waited or 0.0)) * 1000, 3),
            "wait_ms": None if self.waited is None else round(self.waited * 1000, 3),
            "error_code": self.error,
            "created_at": utcnow(),
        }


class CallLogWriter:
    """Writes call-log rows from a background thread, off the call's critical path.

    Rows are gathered for a short window and inserted together: one INSERT for many
    calls keeps the writer from competing with the calls themselves for the interpreter.
    `flush()` cuts the window short and waits until every row handed in is committed
    (the run manager flushes before it reports a run finished, so its calls are listed).
    While the database cannot be reached the rows wait for it, however long: the usage
    and the monthly quota count those that count as usage (`pending` counts them meanwhile).
    """

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._session_factory = session_factory
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._flushing = threading.Event()
        # Rows not yet written, by facility; only facilities with some are keys.
        self._pending: collections.Counter[int] = collections.Counter()
        # Those of them that count as usage (the quota's part of `_pending`), the same way.
        self._counted: collections.Counter[int] = collections.Counter()
        self._written = threading.Condition(self._lock)  # notified as rows leave `_pending`

    def write(self, row: dict[str, Any]) -> None:
        """Queue one call-log row."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._drain, name="call-log", daemon=True)
                self._thread.start()
            self._pending[row["facility_id"]] += 1
            if counts_as_usage(row):
                self._counted[row["facility_id"]] += 1
        self._queue.put(row)

    def pending(self, facility_id: int) -> int:
        """Rows of this facility not yet in the database that count as usage (for quota
        counts)."""
        with self._lock:
            return self._counted[facility_id]

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every queued row is written (or given up on), or `timeout` seconds
        passed; whether they were."""
        if self._thread is not None:
            self._flushing.set()
        with self._written:
            return self._written.wait_for(lambda: not self._pending, timeout)

    def close(self, timeout: float) -> None:
        """Write what is queued, then end the thread (within `timeout` seconds)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._flushing.set()
            self._queue.put(_STOP)
            thread.join(timeout)

    def _write(self, rows: list[dict[str, Any]], used: dict[int, Any]) -> None:
        with self._session_factory() as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":
                session.execute(_NO_WAL_WAIT)
            session.execute(_INSERT_ROWS, rows)
            for account_id, when in used.items():
                session.execute(
                    update(Account).where(Account.id == account_id).values(last_used_at=when)
                )

    def _drain(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                self._queue.task_done()
                return
            rows = [first]
            self._flushing.wait(_LOG_BATCH_WINDOW_S)
            while not self._queue.empty() and len(rows) < 500:
                row = self._queue.get_nowait()
                if row is _STOP:  # the rows before it first, then the stop
                    self._queue.task_done()
                    self._queue.put(_STOP)
                    break
                rows.append(row)
            try:
                used: dict[int, Any] = {}
                for row in rows:
                    account_id = row.pop("account_id", None)
                    if account_id is not None:
                        used[account_id] = row["created_at"]
                db.until_reachable(functools.partial(self._write, rows, used),
                                   what=f"writing {len(rows)} call-log rows",
                                   within_s=math.inf)
            except Exception:  # the calls' outcomes matter more than their log rows
                log.exception("could not write %d call-log rows", len(rows))
            finally:
                with self._lock:
                    for row in rows:
                        facility_id = row["facility_id"]
                        self._pending[facility_id] -= 1
                        if not self._pending[facility_id]:
                            del self._pending[facility_id]
                        if counts_as_usage(row):
                            self._counted[facility_id] -= 1
                            if not self._counted[facility_id]:
                                del self._counted[facility_id]
                    self._written.notify_all()
                    if self._queue.empty():
                        self._flushing.clear()
                for _ in rows:
                    self._queue.task_done()
