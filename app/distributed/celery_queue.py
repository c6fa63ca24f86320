"""The Celery RunQueue: runs and resumes travel as Celery tasks by run id (DESIGN §7).

The database stays the queue of record (a run is `queued` in the `runs` table), Celery
only carries "try to start run X" to some worker; outcomes go to the database, never to
Celery's result backend. A worker claims a run with the lifecycle's conditional move
queued -> running under the caps, so a task delivered twice, or sent again after a lost
message, never executes a run twice. Delivery choices:

- Early acks (`acks_late` off), a prefetch of one and `worker_disable_prefetch`: a task
  is taken only by a worker with a free process, and acknowledged when that process
  takes it. A run that already started may have called out, so it must
  never be redelivered: when its process dies, the heartbeat sweep ends it `interrupted`.
  (Late acks would also crash the worker on a Redis restart: Celery restores unacked
  messages and then acks the running task on the dead channel.) The visibility timeout
  then only matters for the messages Celery itself keeps unacked; it is set above any
  run's life.
- A short-lived "sent" marker per run in Redis: a queued or answered-parked run without
  one (its message was lost with a killed worker's prefetch or a Redis restart, or a cap
  turned it away) is sent again by the next beat; the claim makes the extra copy harmless.
- A "held back" marker: set when a cap turned a run away (at its claim, or at a dispatch
  that left it unsent), taken by the next run to end, which dispatches then. A run that
  ends with no marker dispatches nothing.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery
from celery.signals import worker_process_init
from kombu.exceptions import OperationalError
from sqlalchemy import Connection, Row, select
from sqlalchemy.orm import Session

from app.distributed.held_sigterm import HeldSigterm
from app.distributed.pubsub import RedisListener
from app.distributed.redis_signals import RedisGrantSignals
from app.distributed.run_ends import RunEnds
from app.lifecycle import Lifecycle, RunStatus
from app.models import Run
from app.runner.caps import LOCK_USER_AND_FACILITY, Caps, claim_room, live_counts, under_caps
from app.runner.driver import DRIVEN_COLUMNS, RunDriver
from app.runner.heartbeat import Heartbeat
from app.runner.threads import ended_run
from app.services.grants import GrantCoordinator
from app.services.webhook_events import WebhookSender
from sandbox import PARKED

log = logging.getLogger(__name__)
RUN_TASK = "scriptbox.run"
RESUME_TASK = "scriptbox.resume"
WEBHOOK_TASK = "scriptbox.webhook"
VISIBILITY_TIMEOUT_S = 3600
SENT_MARKER_S = 30  # a queued run whose message vanished is sent again this soon
HELD_MARKER_S = 3600  # "a cap held runs back": the beats dispatch anyway
_DISPATCH_BATCH = 200


def make_celery(redis_url: str, *, prefix: str = "scriptbox") -> Celery:
    """A Celery app on the Redis broker, configured for run tasks (no result backend)."""
    celery = Celery("scriptbox", broker=redis_url, set_as_current=False)
    celery.conf.update(
        # Everything under the installation's prefix: several installations (or test
        # clusters) may share one Redis without taking each other's runs.
        task_default_queue=f"{prefix}.runs",
        task_ignore_result=True,
        task_acks_late=False,
        worker_prefetch_multiplier=1,
        # A worker takes a message only while one of its processes is free: with early
        # acks, a started task no longer counts against the prefetch, so a busy worker
        # would otherwise hold the next runs while another worker idles.
        worker_disable_prefetch=True,
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT_S,
            "global_keyprefix": f"{prefix}:celery:",
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_serializer="json",
        accept_content=["json"],
    )
    return celery


@dataclass(frozen=True)
class WorkerHooks:
    """What a forked worker process must redo for itself (sockets and pools are not shared)."""

    after_fork: Callable[[], None]


class CeleryRunQueue:
    """Sends runs to Celery workers; in a worker, claims and drives them (implements RunQueue)."""

    def __init__(
        self,
        *,
        celery: Celery,
        client: redis.Redis,
        listener: RedisListener,
        signals: RedisGrantSignals,
        driver: RunDriver,
        lifecycle: Lifecycle,
        grants: GrantCoordinator,
        session_factory: Callable[[], Session],
        heartbeat: Heartbeat,
        caps: Caps,
        prefix: str = "scriptbox",
        webhooks: WebhookSender | None = None,
    ) -> None:
        self.celery = celery
        self._webhooks = webhooks
        self._client = client
        self._listener = listener
        self._signals = signals
        self._driver = driver
        self._lifecycle = lifecycle
        self._grants = grants
        self._session_factory = session_factory
        with session_factory() as session:
            self._on_postgres = session.get_bind().dialect.name == "postgresql"
        self.heartbeat = heartbeat
        self._caps = caps
        self._prefix = prefix
        self._ends = RunEnds(client, listener, f"{prefix}:runs-done")
        self._read_ended = functools.partial(ended_run, session_factory)
        self._closing = False
        self._sigterm: HeldSigterm | None = None  # in a forked worker process
        celery.task(name=RUN_TASK, ignore_result=True)(self.start_here)
        celery.task(name=RESUME_TASK, ignore_result=True)(self.resume_here)
        celery.task(name=WEBHOOK_TASK, ignore_result=True)(self.deliver_here)
        grants.on_resolved(self.resume_waiting_for)
        # Every final move (a run finishing, a cancel, the sweep ending a dead worker's
        # run) is announced, so a `wait` anywhere hears it.
        lifecycle.on_end(self._announce_done)
        heartbeat.on_tick(self.dispatch)
        heartbeat.on_tick(self.deliver_due)
        heartbeat.on_orphaned_grant(self.resume_waiting_for)
        signals.on_cancel(self._cancel_here)

    # -- RunQueue ----------------------------------------------------------------------

    def submit(self, run_id: str) -> None:
        """Send the queued run to a worker (it stays `queued` until one claims it)."""
        self._ends.expect(run_id)  # a `wait` then needs only the end's announcement
        self._send(RUN_TASK, run_id)

    def resume(self, run_id: str) -> None:
        """Send a parked run whose grant ended to a worker, which replays its journal."""
        if self._closing:
            return  # it stays parked; the sweep of a live process resumes it
        self._send(RESUME_TASK, run_id)

    def cancel(self, run_id: str) -> bool:
        """Cancel a run in any non-final state; False when it had already ended."""
        if self.heartbeat.cancel_local(run_id):
            self._grants.cancel_run(run_id)
            return True
        if self._lifecycle.cancel_idle(run_id):  # announced by the lifecycle's end hook
            self._grants.cancel_unwatched()
            return True
        if self._lifecycle.request_cancel(run_id):
            # Reaches the worker that drives it now (its on_cancel hook); the heartbeat
            # relays the request too, should this message be lost.
            self._grants.cancel_run(run_id)
            return True
        return False

    def wait(self, run_id: str, timeout: float) -> dict[str, Any] | None:
        """Block until the run ends (on any worker) or `timeout` passes: the run as it
        ended, or None."""
        return self._ends.wait(run_id, timeout, self._read_ended)

    def deliver(self, delivery_id: str) -> None:
        """Send a webhook delivery to a worker; a retry is sent by a later tick."""
        if self._webhooks is not None and not self._closing:
            self._send(WEBHOOK_TASK, delivery_id)

    def deliver_due(self) -> None:
        """Send the deliveries whose retry is due to the workers (a heartbeat listener)."""
        if self._webhooks is not None and not self._closing:
            for delivery_id in self._webhooks.due():
                self.deliver(delivery_id)

    def deliver_here(self, delivery_id: str) -> None:
        """Task body: one attempt of a webhook delivery from this worker. The "sent"
        marker is dropped once the attempt is stored (a retry may follow), not before: a
        beat in between would send a second task for the same attempt."""
        try:
            if self._webhooks is not None:
                self._webhooks.send(delivery_id)
        finally:
            self._client.delete(self._sent_key(WEBHOOK_TASK, delivery_id))

    def shutdown(self, timeout: float) -> None:
        """Stop sending and driving; live pauses here park at once (the Celery worker
        finishes its other tasks on its own)."""
        self._closing = True
        self._grants.park_all()
        self.heartbeat.stop()

    # -- the worker side ---------------------------------------------------------------

    def run_worker(self, *, concurrency: int, hooks: WorkerHooks, loglevel: str = "INFO") -> None:
        """Run a Celery worker here: `concurrency` forked processes, each with its own
        driver id, heartbeat, database connections and sandbox."""

        def _child(**_: object) -> None:
            self._become_worker_process()
            hooks.after_fork()
            self.heartbeat.start()

        worker_process_init.connect(_child, weak=False)
        self.celery.Worker(
            concurrency=concurrency,
            pool="prefork",
            loglevel=loglevel,
            hostname=f"scriptbox@{socket.gethostname()}-{os.getpid()}",
        ).start()

    def _become_worker_process(self) -> None:
        # Forked children share the parent's driver id; each needs its own, or a sibling's
        # beat would keep a dead child's runs looking alive.
        driver_id = f"celery-{socket.gethostname()}-{os.getpid()}-{os.urandom(4).hex()}"
        self.heartbeat.driver_id = driver_id
        self._driver.driver_id = driver_id
        self._signals.listen()
        self._sigterm = HeldSigterm(on_held=self._grants.park_all)

    def _task(self) -> contextlib.AbstractContextManager[None]:
        """Around a task body: a SIGTERM to this process lets the run in hand end."""
        return self._sigterm.during_task() if self._sigterm else contextlib.nullcontext()

    def _left_for_another(self, task: str, run_id: str) -> bool:
        """True when this process is stopping (a SIGTERM held): the task is not taken, and
        its "sent" marker is dropped so the next beat sends it to another process."""
        if self._sigterm is None or not self._sigterm.held:
            return False
        self._client.delete(self._sent_key(task, run_id))
        return True

    def start_here(self, run_id: str) -> None:
        """Task body: claim the queued run within the caps and drive it in this process."""
        with self._task():
            self._start_here(run_id)

    def _start_here(self, run_id: str) -> None:
        if self._closing or self._left_for_another(RUN_TASK, run_id):
            return
        self.heartbeat.start()
        claimed = self._claim(run_id)
        if claimed is None:
            # A later dispatch may send it again (a cap turned it away, or it had ended):
            # the next run to end anywhere looks for it.
            with self._client.pipeline() as pipe:
                pipe.delete(self._sent_key(RUN_TASK, run_id))
                pipe.set(self._held_key, "1", ex=HELD_MARKER_S)
                pipe.execute()
            return
        self._drive(run_id, claimed)
        self._dispatch_if_held()

    def _dispatch_if_held(self) -> None:
        """A slot under the caps opened: send the runs a cap held back, if one did. Most
        runs end with nothing held back, and a dispatch costs three queries and a Redis
        round trip per queued run (runs in flight to workers are `queued` too)."""
        try:
            held = bool(self._client.delete(self._held_key))  # one worker takes the flag
        except redis.RedisError:
            held = True
        if held:
            self.dispatch()

    def resume_here(self, run_id: str) -> None:
        """Task body: take a parked run and replay it in this process."""
        with self._task():
            self._resume_here(run_id)

    def _resume_here(self, run_id: str) -> None:
        if self._closing or self._left_for_another(RESUME_TASK, run_id):
            return
        self.heartbeat.start()
        claimed = self._claim(run_id, resuming=True)
        self._client.delete(self._sent_key(RESUME_TASK, run_id))  # it may park and resume again
        if claimed is not None:
            self._drive(run_id, claimed)

    def _drive(self, run_id: str, claimed: Row[Any]) -> None:
        outcome = None
        try:
            outcome = self._driver.drive(run_id, claimed)
        finally:
            if outcome is None:
                # No final move may have announced it (its row was gone, or even the
                # failure could not be stored): its waiters re-read the row.
                self._announce_done(run_id)
            elif outcome.status == PARKED:
                self._resume_if_answered(run_id)

    def _resume_if_answered(self, run_id: str) -> None:
        """A prompt answered while its run was parking is not missed (or left to the sweep)."""
        with self._session_factory() as session:
            grant_id = session.scalar(select(Run.waiting_grant_id).where(Run.id == run_id))
        if grant_id is not None and self._grants.outcome(grant_id) is not None:
            self.resume(run_id)

    def _claim(self, run_id: str, *, resuming: bool = False) -> Row[Any] | None:
        """queued (or parked, `resuming`) -> running for this process, if the user's and
        facility's caps allow (a declined resume is sent again by a later beat).

        The run's user and facility rows are locked (FOR NO KEY UPDATE), so two workers
        never both take the last slot, and the caps are counted after the locks. On
        PostgreSQL that is one statement (the UPDATE calls `scriptbox_claim_room`); on
        SQLite, whose writers queue on one lock anyway, one transaction of the lock and
        the counting UPDATE. The claimed row comes back with what its driver needs.
        """
        verb = self._lifecycle.resume if resuming else self._lifecycle.start
        if self._on_postgres:
            return verb(run_id, driver=self._driver.driver_id, where=claim_room(self._caps),
                        returning=DRIVEN_COLUMNS)

        def lock(connection: Connection) -> None:
            connection.execute(LOCK_USER_AND_FACILITY, {"run_id": run_id})

        return verb(run_id, driver=self._driver.driver_id, where=under_caps(self._caps),
                    before=lock, returning=DRIVEN_COLUMNS)

    def _cancel_here(self, run_id: str) -> None:
        self.heartbeat.cancel_local(run_id)

    # -- dispatching -------------------------------------------------------------------

    def dispatch(self) -> int:
        """Send queued runs the caps would let start and that no message carries now."""
        if self._closing:
            return 0
        with self._session_factory() as session:
            queued = session.execute(
                select(Run.id, Run.user_id, Run.facility_id)
                .where(Run.status == str(RunStatus.QUEUED))
                .order_by(Run.created_at)
                .limit(_DISPATCH_BATCH)
            ).all()
            if not queued:
                return 0
            per_user, per_facility = live_counts(
                session, {row.user_id for row in queued}, {row.facility_id for row in queued}
            )
        sent, held = 0, False
        for row in queued:
            if (
                per_user[row.user_id] >= self._caps.per_user
                or per_facility[row.facility_id] >= self._caps.per_facility
            ):
                held = True
                continue
            per_user[row.user_id] += 1
            per_facility[row.facility_id] += 1
            sent += self._send(RUN_TASK, row.id)
        if held:  # the next run to end sends them
            try:
                self._client.set(self._held_key, "1", ex=HELD_MARKER_S)
            except redis.RedisError:
                log.warning("Redis is unreachable; held-back runs wait for the next beat")
        return sent

    def resume_waiting_for(self, grant_id: str) -> None:
        """Send a resume task for every parked run that waited for this grant."""
        with self._session_factory() as session:
            parked = session.scalars(
                select(Run.id).where(
                    Run.waiting_grant_id == grant_id, Run.status == str(RunStatus.PARKED)
                )
            ).all()
        for run_id in parked:
            self.resume(run_id)

    def _send(self, task: str, run_id: str) -> int:
        # SET NX: one message per run in flight; the marker dies with a Redis restart, so
        # a run whose message was lost with it is sent again by the next dispatch.
        try:
            if not self._client.set(self._sent_key(task, run_id), "1", nx=True,
                                    ex=SENT_MARKER_S):
                return 0
            self.celery.send_task(task, args=(run_id,), retry=False)
        except (redis.RedisError, OperationalError):
            # The run is safe in the database: a beat sends it once Redis is back.
            log.warning("Redis is unreachable; %s %s waits for the next beat", task, run_id)
            return 0
        return 1

    @property
    def _held_key(self) -> str:
        return f"{self._prefix}:held-back"

    def _sent_key(self, task: str, run_id: str) -> str:
        return f"{self._prefix}:sent:{task}:{run_id}"

    # -- run ends, heard by waiters in any process --------------------------------------

    def _announce_done(self, run_id: str, run: dict[str, Any] | None = None) -> None:
        try:
            self._ends.announce(run_id, run)
        except redis.RedisError:
            # The end is committed; waiters re-read the row once Redis is back.
            log.warning("Redis is unreachable; the end of run %s is not announced", run_id)
