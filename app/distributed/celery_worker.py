"""The worker side of the Celery queue: what a Celery worker process does (DESIGN §7).

`CeleryWorker.run` starts a Celery worker whose forked processes each become a worker of
their own (driver id, grant signals, a held SIGTERM). Its task bodies claim a run with
the lifecycle's conditional move queued -> running under the caps, so a task delivered
twice, or sent again after a lost message, never executes a run twice; they drive it
here, and a run's end is announced to the waiters of every process. Sending is the
queue's (`celery_queue`), which builds this and owns it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from celery import Celery
from celery.signals import worker_process_init, worker_shutting_down
from sqlalchemy import Connection, Row, select

from app.distributed.celery_tasks import (
    HELD_MARKER_S,
    RESUME_TASK,
    RUN_TASK,
    WEBHOOK_TASK,
    Markers,
)
from app.distributed.held_sigterm import HeldSigterm
from app.distributed.redis_signals import RedisGrantSignals
from app.distributed.run_ends import RunEnds
from app.models import Run
from app.runner.caps import LOCK_USER_AND_FACILITY, claim_room, under_caps
from app.runner.driver import DRIVEN_COLUMNS
from app.runner.parts import EngineParts
from sandbox import PARKED

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerHooks:
    """What a forked worker process must redo for itself (sockets and pools are not shared)."""

    after_fork: Callable[[], None]


class Sender(Protocol):
    """What the worker side asks of the sending side (the queue that owns it)."""

    @property
    def closing(self) -> bool:
        """True once shutdown began: nothing more is sent or driven."""

    def dispatch(self) -> int:
        """Send queued runs the caps would let start and that no message carries now."""

    def resume(self, run_id: str) -> None:
        """Send a parked run whose grant ended to a worker."""


class CeleryWorker:
    """Takes the queue's tasks in a worker process: claims runs, drives them, announces ends."""

    def __init__(
        self,
        parts: EngineParts,
        *,
        sender: Sender,
        celery: Celery,
        client: redis.Redis,
        markers: Markers,
        ends: RunEnds,
        signals: RedisGrantSignals,
    ) -> None:
        self._parts = parts
        self.celery = celery
        self._sender = sender
        self._client = client
        self._markers = markers
        self._ends = ends
        self._signals = signals
        with parts.session_factory() as session:
            self._on_postgres = session.get_bind().dialect.name == "postgresql"
        self._sigterm: HeldSigterm | None = None  # in a forked worker process
        celery.task(name=RUN_TASK, ignore_result=True)(self.start_here)
        celery.task(name=RESUME_TASK, ignore_result=True)(self.resume_here)
        celery.task(name=WEBHOOK_TASK, ignore_result=True)(self.deliver_here)
        # Every final move (a run finishing, a cancel, the sweep ending a dead worker's
        # run) is announced, so a `wait` anywhere hears it.
        parts.lifecycle.on_end(self.announce_end)
        # And every pause for a sign-in: a `wait` ends there too (the run needs a person).
        parts.lifecycle.on_pause(self.announce_pause)
        signals.on_cancel(self._cancel_here)

    def run(self, *, concurrency: int, hooks: WorkerHooks, loglevel: str = "INFO") -> None:
        """Run a Celery worker here: `concurrency` forked processes, each with its own
        driver id, heartbeat, database connections and sandbox."""

        def _child(**_: object) -> None:
            self._become_worker_process()
            hooks.after_fork()
            self._parts.heartbeat.start()

        worker = self.celery.Worker(
            concurrency=concurrency,
            pool="prefork",
            loglevel=loglevel,
            hostname=f"scriptbox@{socket.gethostname()}-{os.getpid()}",
        )

        def _stopping(how: str = "", **_: object) -> None:
            # `docker stop` and `kill PID` signal this main process alone; its warm
            # shutdown waits for the runs in hand. Passed on, the forked processes park a
            # live pause at once, as when the whole group is signalled.
            if how == "Warm" and worker.pool is not None:
                for pid in worker.pool.info.get("processes", ()):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)

        worker_process_init.connect(_child, weak=False)
        worker_shutting_down.connect(_stopping, weak=False)
        worker.start()

    def _become_worker_process(self) -> None:
        # Forked children share the parent's driver id; each needs its own, or a sibling's
        # beat would keep a dead child's runs looking alive.
        driver_id = f"celery-{socket.gethostname()}-{os.getpid()}-{os.urandom(4).hex()}"
        self._parts.heartbeat.driver_id = driver_id
        self._parts.driver.driver_id = driver_id
        self._signals.listen()
        self._sigterm = HeldSigterm(on_held=self._parts.grants.park_all)

    def _task(self) -> contextlib.AbstractContextManager[None]:
        """Around a task body: a SIGTERM to this process lets the run in hand end."""
        return self._sigterm.during_task() if self._sigterm else contextlib.nullcontext()

    def _left_for_another(self, task: str, run_id: str) -> bool:
        """True when this process is stopping (a SIGTERM held): the task is not taken, and
        its "sent" marker is dropped so the next beat sends it to another process."""
        if self._sigterm is None or not self._sigterm.held:
            return False
        self._client.delete(self._markers.sent(task, run_id))
        return True

    # -- task bodies -------------------------------------------------------------------

    def start_here(self, run_id: str) -> None:
        """Task body: claim the queued run within the caps and drive it in this process."""
        with self._task():
            self._start_here(run_id)

    def _start_here(self, run_id: str) -> None:
        if self._sender.closing or self._left_for_another(RUN_TASK, run_id):
            return
        self._parts.heartbeat.start()
        claimed = self._claim(run_id)
        if claimed is None:
            # A later dispatch may send it again (a cap turned it away, or it had ended):
            # the next run to end anywhere looks for it.
            with self._client.pipeline() as pipe:
                pipe.delete(self._markers.sent(RUN_TASK, run_id))
                pipe.set(self._markers.held, "1", ex=HELD_MARKER_S)
                pipe.execute()
            return
        self._drive(run_id, claimed)
        self._dispatch_if_held()

    def _dispatch_if_held(self) -> None:
        """A slot under the caps opened: send the runs a cap held back, if one did. Most
        runs end with nothing held back, and a dispatch costs three queries and a Redis
        round trip per queued run (runs in flight to workers are `queued` too)."""
        try:
            held = bool(self._client.delete(self._markers.held))  # one worker takes the flag
        except redis.RedisError:
            held = True
        if held:
            self._sender.dispatch()

    def resume_here(self, run_id: str) -> None:
        """Task body: take a parked run and replay it in this process."""
        with self._task():
            self._resume_here(run_id)

    def _resume_here(self, run_id: str) -> None:
        if self._sender.closing or self._left_for_another(RESUME_TASK, run_id):
            return
        self._parts.heartbeat.start()
        claimed = self._claim(run_id, resuming=True)
        # It may park and resume again.
        self._client.delete(self._markers.sent(RESUME_TASK, run_id))
        if claimed is not None:
            self._drive(run_id, claimed)

    def deliver_here(self, delivery_id: str) -> None:
        """Task body: one attempt of a webhook delivery from this worker. The "sent"
        marker is dropped once the attempt is stored (a retry may follow), not before: a
        beat in between would send a second task for the same attempt."""
        try:
            if self._parts.webhooks is not None:
                self._parts.webhooks.send(delivery_id)
        finally:
            self._client.delete(self._markers.sent(WEBHOOK_TASK, delivery_id))

    # -- claiming and driving ----------------------------------------------------------

    def _drive(self, run_id: str, claimed: Row[Any]) -> None:
        outcome = None
        try:
            outcome = self._parts.driver.drive(run_id, claimed)
        finally:
            if outcome is None:
                # No final move may have announced it (its row was gone, or even the
                # failure could not be stored): its waiters re-read the row.
                self.announce_end(run_id)
            elif outcome.status == PARKED:
                self._resume_if_answered(run_id)

    def _resume_if_answered(self, run_id: str) -> None:
        """A prompt answered while its run was parking is not missed (or left to the sweep)."""
        with self._parts.session_factory() as session:
            grant_id = session.scalar(select(Run.waiting_grant_id).where(Run.id == run_id))
        if grant_id is not None and self._parts.grants.outcome(grant_id) is not None:
            self._sender.resume(run_id)

    def _claim(self, run_id: str, *, resuming: bool = False) -> Row[Any] | None:
        """queued (or parked, `resuming`) -> running for this process, if the user's and
        facility's caps allow (a declined resume is sent again by a later beat).

        The run's user and facility rows are locked (FOR NO KEY UPDATE), so two workers
        never both take the last slot, and the caps are counted after the locks. On
        PostgreSQL that is one statement (the UPDATE calls `scriptbox_claim_room`); on
        SQLite, whose writers queue on one lock anyway, one transaction of the lock and
        the counting UPDATE. The claimed row comes back with what its driver needs.
        """
        verb = self._parts.lifecycle.resume if resuming else self._parts.lifecycle.start

        def lock(connection: Connection) -> None:
            connection.execute(LOCK_USER_AND_FACILITY, {"run_id": run_id})

        with self._parts.heartbeat.claiming(run_id):  # no orphan to its sweep meanwhile
            if self._on_postgres:
                claimed = verb(run_id, driver=self._parts.driver.driver_id,
                               where=claim_room(self._parts.caps), returning=DRIVEN_COLUMNS)
            else:
                claimed = verb(run_id, driver=self._parts.driver.driver_id,
                               where=under_caps(self._parts.caps), before=lock,
                               returning=DRIVEN_COLUMNS)
            if claimed is not None:
                self._parts.heartbeat.adopt(run_id)  # driven here (cancellable) from now
        return claimed

    def _cancel_here(self, run_id: str) -> None:
        self._parts.heartbeat.cancel_local(run_id)

    # -- run ends, heard by waiters in any process --------------------------------------

    def announce_end(self, run_id: str, run: dict[str, Any] | None = None) -> None:
        """Tell the waiters of every process that the run ended (`run`: as it ended)."""
        try:
            self._ends.announce(run_id, run)
        except redis.RedisError:
            # The end is committed; waiters re-read the row once Redis is back.
            log.warning("Redis is unreachable; the end of run %s is not announced", run_id)

    def announce_pause(self, run_id: str) -> None:
        """Tell the waiters of every process that the run paused for a sign-in."""
        try:
            self._ends.announce_pause(run_id)
        except redis.RedisError:
            # Its waiters re-read the row once Redis is back, or when their time is up.
            log.warning("Redis is unreachable; the pause of run %s is not announced", run_id)
