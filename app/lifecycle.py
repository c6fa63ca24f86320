"""The run lifecycle (DESIGN §2, §7): states, allowed transitions, and the verbs that move runs.

These verbs are the only writers of `Run.status` and the only emitters of `run.*` events.
Every move is a conditional UPDATE from the expected states, so when two threads or two
processes race for one run exactly one wins and the other learns it lost (False). Each
verb commits before publishing (a lone UPDATE as it runs, a claim's locks and UPDATE as
one transaction): a page must never hear of a state the database does not hold yet (the
run engine calls them from background threads, outside any request, so there is no
request edge to commit for them).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Table,
    Update,
    bindparam,
    func,
    literal_column,
    or_,
    update,
)

from app.errors import IllegalTransition
from app.models import Run
from app.models._types import storable, utcnow
from app.models.scripts import run_dict
from app.seams import EventBus

# A connection of the app's engine for one move: the moves are Core statements (the ORM's
# session around one cost more than the statement itself).
Connect = Callable[[], AbstractContextManager[Connection]]


class RunStatus(StrEnum):
    """Where a run is (DESIGN §2)."""

    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting_for_grant"
    PARKED = "parked"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


FINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED})
# A driver holds a live worker for these; they count against the concurrency caps.
LIVE = frozenset({RunStatus.RUNNING, RunStatus.WAITING})
NOT_FINAL = frozenset(RunStatus) - FINAL
# Paused for a sign-in: the run cannot go on until a person answers its prompt.
PAUSED = frozenset({RunStatus.WAITING, RunStatus.PARKED})

TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.FAILED}),
    RunStatus.RUNNING: frozenset({RunStatus.WAITING} | FINAL),
    # The sandbox may end a waiting run itself (cancelled, or killed while the prompt shows).
    RunStatus.WAITING: frozenset({RunStatus.RUNNING, RunStatus.PARKED} | FINAL),
    RunStatus.PARKED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.FAILED}),
}

INTERRUPTED = "interrupted"
INTERRUPTED_MESSAGE = "the server stopped while this run was running; start it again"
# Also `interrupted`, said by a driver that lost its database in the middle of a run.
UNREACHABLE_MESSAGE = ("the database could not be reached while this run was running; "
                       "start it again once Scriptbox is back")


class RunOwners(Protocol):
    """Whose run it is, which addresses its events: a `Run`, or a driver's copy of one."""

    @property
    def id(self) -> str: ...

    @property
    def user_id(self) -> int: ...

    @property
    def facility_id(self) -> int: ...


RUNS = cast(Table, Run.__table__)
# The run's driver has not renewed its heartbeat since `stale_before` (or never did).
_STALE = or_(RUNS.c.heartbeat_at.is_(None), RUNS.c.heartbeat_at < bindparam("stale_before"))


def is_final(status: str) -> bool:
    """True once a run reached a state it never leaves."""
    return status in FINAL


def is_paused(status: str) -> bool:
    """True while a run waits for a person to answer its sign-in prompt."""
    return status in PAUSED


def statuses(states: Iterable[str]) -> list[ColumnElement[str]]:
    """States for `status IN (...)` written into the SQL: a list of bound values is an
    "expanding" parameter, whose SQL is rendered again at every execution."""
    return [literal_column(f"'{RunStatus(state)}'") for state in sorted(states)]


def check_transition(source: Iterable[RunStatus], target: RunStatus) -> None:
    """Raise IllegalTransition unless every state in `source` may move to `target`."""
    for state in source:
        if target not in TRANSITIONS.get(state, frozenset()):
            raise IllegalTransition(f"a run cannot go from {state} to {target}")


class Lifecycle:
    """The verbs that move runs; built once per app with its connections and event bus."""

    def __init__(self, *, transaction: Connect, statement: Connect, bus: EventBus) -> None:
        """`transaction()` opens a transaction (`Engine.begin`); `statement()` a connection
        whose one writing statement is committed on its own (`db.one_statement`)."""
        self._transaction = transaction
        self._statement = statement
        self._bus = bus
        self._end_hooks: list[Callable[[str, dict[str, Any]], object]] = []
        self._pause_hooks: list[Callable[[str], object]] = []

    def on_end(self, hook: Callable[[str, dict[str, Any]], object]) -> None:
        """Call `hook(run_id, run)` after every move to a final state, whoever made it (the
        driver, a cancel, the heartbeat's sweep), with the run as it ended (`to_dict`):
        the run queue wakes its `wait`s there."""
        self._end_hooks.append(hook)

    def on_pause(self, hook: Callable[[str], object]) -> None:
        """Call `hook(run_id)` after every move to waiting_for_grant (committed): the run
        cannot go on without a person, which ends a `wait` for it as its end does."""
        self._pause_hooks.append(hook)

    def move(
        self,
        run_id: str,
        *,
        source: Iterable[RunStatus],
        target: RunStatus,
        values: dict[str, Any] | None = None,
        where: tuple[ColumnElement[bool], ...] = (),
        params: dict[str, Any] | None = None,
        before: Callable[[Connection], object] | None = None,
        returning: tuple[ColumnElement[Any], ...] = (),
    ) -> Row[Any] | None:
        """Move the run from one of `source` to `target` (and set `values`): the moved row
        (with `returning` columns), or None if it was not in `source` any more (or `where`
        did not hold). Publishes `run.status`, or `run.finished` for final states.

        One statement (UPDATE ... RETURNING), committed as it runs; with `before`, one
        transaction in which `before(connection)` runs first (a claim takes its row locks
        there). `where` holds
        conditions on the `runs` table built once (their bound values come in `params`).
        """
        expected = tuple(source)
        check_transition(expected, target)
        changes = {key: storable(value) for key, value in (values or {}).items()}
        if target in FINAL:
            # A run that ended needs neither its journal nor its driver any more.
            changes.update(
                journal=None, driver=None, waiting_grant_id=None, paused_at=None,
                finished_at=utcnow(),
            )
        statement = _move_statement(
            tuple(sorted(str(s) for s in expected)), target, tuple(sorted(changes)), where,
            returning,
        )
        bound = {f"set_{key}": value for key, value in changes.items()}
        # A move alone is one statement: no transaction around it unless `before` joins it.
        with (self._statement if before is None else self._transaction)() as connection:
            if before is not None:
                before(connection)
            parameters = {"run_id": run_id, **bound, **(params or {})}
            row = connection.execute(statement, parameters).first()
        if row is None:
            return None
        if target in FINAL:  # the page gets the whole run
            run = run_dict(row)
            message = {"type": "run.finished", "run_id": run_id, "run": run}
            # Before the pages hear of it: whatever they do next sees the run ended.
            for hook in self._end_hooks:
                hook(run_id, run)
        else:
            message = {"type": "run.status", "run_id": run_id, "status": str(target)}
        # The facility's admins follow everyone's runs: their watching pages hear it too.
        self._bus.publish(row.user_id, row.facility_id, message, watchers=True)
        return row

    # -- the verbs ---------------------------------------------------------------------

    def start(
        self,
        run_id: str,
        *,
        driver: str,
        where: tuple[ColumnElement[bool], ...] = (),
        before: Callable[[Connection], object] | None = None,
        returning: tuple[ColumnElement[Any], ...] = (),
    ) -> Row[Any] | None:
        """queued -> running, driven by `driver` from now on (if `where` holds: the caps);
        the claimed row with its `returning` columns (what its driver needs), or None."""
        now = utcnow()
        return self.move(
            run_id,
            source=(RunStatus.QUEUED,),
            target=RunStatus.RUNNING,
            values={"driver": driver, "heartbeat_at": now, "started_at": now},
            where=where,
            before=before,
            returning=returning,
        )

    def resume(
        self,
        run_id: str,
        *,
        driver: str,
        where: tuple[ColumnElement[bool], ...] = (),
        before: Callable[[Connection], object] | None = None,
        returning: tuple[ColumnElement[Any], ...] = (),
    ) -> Row[Any] | None:
        """parked -> running: a driver replays the run's journal (if `where` holds); the
        claimed row with its `returning` columns, or None."""
        return self.move(
            run_id,
            source=(RunStatus.PARKED,),
            target=RunStatus.RUNNING,
            # waiting_grant_id stays: the resumed call gets that prompt's outcome (and
            # paused_at: its wait for the sign-in began then).
            values={"driver": driver, "heartbeat_at": utcnow(), "cancel_requested": False},
            where=where,
            before=before,
            returning=returning,
        )

    def pause(self, run_id: str, *, grant_id: str) -> bool:
        """running -> waiting_for_grant (the worker stays alive for now)."""
        moved = self.move(
            run_id,
            source=(RunStatus.RUNNING,),
            target=RunStatus.WAITING,
            values={"waiting_grant_id": grant_id, "paused_at": utcnow()},
        )
        paused = moved is not None
        if paused:
            for hook in self._pause_hooks:
                hook(run_id)
        return paused

    def unpause(self, run_id: str) -> bool:
        """waiting_for_grant -> running: the grant ended and the live worker goes on."""
        return self.move(
            run_id,
            source=(RunStatus.WAITING,),
            target=RunStatus.RUNNING,
            values={"waiting_grant_id": None, "paused_at": None},
        ) is not None

    def park(
        self, run_id: str, *, journal: bytes, output: str, calls: int, duration_ms: float
    ) -> bool:
        """waiting_for_grant -> parked: the (encrypted) journal is kept, no process holds it.
        The time the run has used (`duration_ms`, also inside the journal) is kept beside it
        in the clear (`parked_duration_ms`), so a parked run that is cancelled ends with it.
        Not as its `duration_ms` while it is paused: pages show a paused or resumed run's
        live time so far where it has none."""
        return self.move(
            run_id,
            source=(RunStatus.WAITING,),
            target=RunStatus.PARKED,
            values={"journal": journal, "output": output, "calls": calls, "driver": None,
                    "parked_duration_ms": duration_ms},
        ) is not None

    def finish(self, run_id: str, *, target: RunStatus, values: dict[str, Any]) -> bool:
        """running|waiting_for_grant -> a final state, with the run's outcome."""
        return self.move(run_id, source=LIVE, target=target, values=values) is not None

    def cancel_idle(self, run_id: str) -> bool:
        """queued|parked -> cancelled: nothing executes it, so nothing else must stop."""
        return self.move(
            run_id,
            source=(RunStatus.QUEUED, RunStatus.PARKED),
            target=RunStatus.CANCELLED,
            values={"error_code": "cancelled", "error_message": "the run was cancelled"},
        ) is not None

    def cancel_orphan(self, run_id: str, *, stale_before: datetime) -> bool:
        """running|waiting -> cancelled when its driver stopped renewing its heartbeat."""
        return self.move(
            run_id,
            source=LIVE,
            target=RunStatus.CANCELLED,
            values={"error_code": "cancelled", "error_message": "the run was cancelled"},
            where=(_STALE,),
            params={"stale_before": stale_before},
        ) is not None

    def interrupt(self, run_id: str, *, stale_before: datetime) -> bool:
        """running|waiting -> failed `interrupted`: its driver is gone (heartbeat too old)."""
        return self.move(
            run_id,
            source=LIVE,
            target=RunStatus.FAILED,
            values={"error_code": INTERRUPTED, "error_message": INTERRUPTED_MESSAGE},
            where=(_STALE,),
            params={"stale_before": stale_before},
        ) is not None

    def request_cancel(self, run_id: str) -> bool:
        """Ask whichever process drives a live run to cancel it (seen at its next heartbeat)."""
        with self._statement() as connection:
            asked = connection.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id, RUNS.c.status.in_(statuses(LIVE)))
                .values(cancel_requested=True)
            ).rowcount
        return bool(asked)

    def fail(self, run_id: str, *, code: str, message: str) -> bool:
        """Any non-final state -> failed, for a run the host could not carry on."""
        return self.move(
            run_id,
            source=NOT_FINAL,
            target=RunStatus.FAILED,
            values={"error_code": code, "error_message": message},
        ) is not None

    def output(self, run: RunOwners, text: str, *, offset: int) -> None:
        """Deliver a chunk of the run's output to its pages (`run.output`); `offset` is where
        the chunk starts in the whole output (in characters), so a page that already shows
        the stored output skips what it has and notices what it missed."""
        message = {"type": "run.output", "run_id": run.id, "data": text, "offset": offset}
        self._bus.publish(run.user_id, run.facility_id, message, watchers=True)

    def store_output(self, run_id: str, output: str) -> bool:
        """Keep a live run's output so far in its row (a page opened later shows it);
        False once the run left the live states (its final output is written by `finish`)."""
        with self._statement() as connection:
            stored = connection.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id, RUNS.c.status.in_(statuses(LIVE)))
                .values(output=storable(output))
            ).rowcount
        return bool(stored)


@functools.lru_cache(maxsize=128)
def _move_statement(
    expected: tuple[str, ...],
    target: RunStatus,
    keys: tuple[str, ...],
    where: tuple[ColumnElement[bool], ...],
    extra: tuple[ColumnElement[Any], ...] = (),
) -> Update:
    """A move's UPDATE ... RETURNING, built once per shape with its values bound per call:
    building a fresh statement (and its cache key) cost more than running it (py-spy of
    `scriptbox serve` under bench/cluster.py). It returns what the event needs, and `extra`."""
    needed = tuple(RUNS.c) if target in FINAL else (RUNS.c.user_id, RUNS.c.facility_id)
    # Each column once (by identity: a column's == builds SQL, so no set or dict here).
    returning = needed + tuple(c for c in extra if not any(c is n for n in needed))
    values: dict[str, Any] = {
        key: bindparam(f"set_{key}", type_=RUNS.c[key].type) for key in keys
    }
    if target in FINAL and "duration_ms" not in values:
        # An end that reports no duration of its own (a cancel while parked, a failure)
        # keeps the time the run had used when it last parked, if it did.
        values["duration_ms"] = func.coalesce(RUNS.c.duration_ms, RUNS.c.parked_duration_ms)
    return (
        update(RUNS)
        .where(RUNS.c.id == bindparam("run_id"), RUNS.c.status.in_(statuses(expected)), *where)
        .values(status=str(target), **values)
        .returning(*returning)
    )
