"""The Celery RunQueue: runs and resumes travel as Celery tasks by run id (DESIGN §7).

This module is the sending side, what a web process does: submit, resume, cancel, wait,
deliver, and the dispatch of queued runs. The worker side, which claims and drives the
runs, is `celery_worker` (the queue builds it and owns it); the Celery app, the task
names and the Redis markers both sides use are `celery_tasks`.

The database stays the queue of record (a run is `queued` in the `runs` table), Celery
only carries "try to start run X" to some worker; outcomes go to the database, never to
Celery's result backend. A worker claims a run with the lifecycle's conditional move
queued -> running under the caps, so a task delivered twice, or sent again after a lost
message, never executes a run twice. Delivery choices (early acks: `celery_tasks`):

- A short-lived "sent" marker per run in Redis: a queued or answered-parked run without
  one (its message was lost with a killed worker's prefetch or a Redis restart, or a cap
  turned it away) is sent again by the next beat; the claim makes the extra copy harmless.
- A "held back" marker: set when a cap turned a run away (at its claim, or at a dispatch
  that left it unsent), taken by the next run to end, which dispatches then. A run that
  ends with no marker dispatches nothing.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import redis
from celery import Celery
from kombu.exceptions import OperationalError
from sqlalchemy import select

from app.distributed.celery_tasks import (
    HELD_MARKER_S,
    RESUME_TASK,
    RUN_TASK,
    SENT_MARKER_S,
    WEBHOOK_TASK,
    Markers,
)
from app.distributed.celery_worker import CeleryWorker
from app.distributed.pubsub import RedisListener
from app.distributed.redis_signals import RedisGrantSignals
from app.distributed.run_ends import RunEnds
from app.lifecycle import RunStatus
from app.models import Run
from app.runner.caps import live_counts
from app.runner.parts import EngineParts
from app.runner.threads import settled_run

log = logging.getLogger(__name__)
_DISPATCH_BATCH = 200


class CeleryRunQueue:
    """Sends runs to Celery workers (implements RunQueue); its `worker` claims and drives
    them in a worker process."""

    def __init__(
        self,
        parts: EngineParts,
        *,
        celery: Celery,
        client: redis.Redis,
        listener: RedisListener,
        signals: RedisGrantSignals,
        prefix: str = "scriptbox",
    ) -> None:
        self._parts = parts
        self.celery = celery
        self._client = client
        self._markers = Markers(prefix)
        self._ends = RunEnds(client, listener, f"{prefix}:runs-done")
        self._read_settled = functools.partial(settled_run, parts.session_factory)
        self._closing = False
        self.worker = CeleryWorker(
            parts,
            sender=self,
            celery=celery,
            client=client,
            markers=self._markers,
            ends=self._ends,
            signals=signals,
        )
        parts.grants.on_resolved(self.resume_waiting_for)
        self._parts.heartbeat.on_tick(self.dispatch)
        self._parts.heartbeat.on_tick(self.deliver_due)
        self._parts.heartbeat.on_orphaned_grant(self.resume_waiting_for)

    @property
    def closing(self) -> bool:
        """True once shutdown began: nothing more is sent or driven."""
        return self._closing

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
        if self._parts.heartbeat.cancel_local(run_id):
            self._parts.grants.cancel_run(run_id)
            return True
        if self._parts.lifecycle.cancel_idle(run_id):  # announced by the lifecycle's end hook
            self._parts.grants.cancel_unwatched()
            return True
        if self._parts.lifecycle.request_cancel(run_id):
            # Reaches the worker that drives it now (its on_cancel hook); the heartbeat
            # relays the request too, should this message be lost.
            self._parts.grants.cancel_run(run_id)
            return True
        return False

    def wait(self, run_id: str, timeout: float) -> dict[str, Any] | None:
        """Block until the run ends (on any worker), or pauses for a sign-in, or `timeout`
        passes: the run as it ended (or as it is once paused), or None."""
        return self._ends.wait(run_id, timeout, self._read_settled)

    def deliver(self, delivery_id: str) -> None:
        """Send a webhook delivery to a worker; a retry is sent by a later tick."""
        if self._parts.webhooks is not None and not self._closing:
            self._send(WEBHOOK_TASK, delivery_id)

    def deliver_due(self) -> None:
        """Send the deliveries whose retry is due to the workers (a heartbeat listener)."""
        if self._parts.webhooks is not None and not self._closing:
            for delivery_id in self._parts.webhooks.due():
                self.deliver(delivery_id)

    def shutdown(self, timeout: float) -> None:
        """Stop sending and driving; live pauses here park at once (the Celery worker
        finishes its other tasks on its own)."""
        self._closing = True
        self._parts.grants.park_all()
        self._parts.heartbeat.stop()

    # -- dispatching -------------------------------------------------------------------

    def dispatch(self) -> int:
        """Send queued runs the caps would let start and that no message carries now."""
        if self._closing:
            return 0
        with self._parts.session_factory() as session:
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
                per_user[row.user_id] >= self._parts.caps.per_user
                or per_facility[row.facility_id] >= self._parts.caps.per_facility
            ):
                held = True
                continue
            per_user[row.user_id] += 1
            per_facility[row.facility_id] += 1
            sent += self._send(RUN_TASK, row.id)
        if held:  # the next run to end sends them
            try:
                self._client.set(self._markers.held, "1", ex=HELD_MARKER_S)
            except redis.RedisError:
                log.warning("Redis is unreachable; held-back runs wait for the next beat")
        return sent

    def resume_waiting_for(self, grant_id: str) -> None:
        """Send a resume task for every parked run that waited for this grant."""
        with self._parts.session_factory() as session:
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
            if not self._client.set(self._markers.sent(task, run_id), "1", nx=True,
                                    ex=SENT_MARKER_S):
                return 0
            self.celery.send_task(task, args=(run_id,), retry=False)
        except (redis.RedisError, OperationalError):
            # The run is safe in the database: a beat sends it once Redis is back.
            log.warning("Redis is unreachable; %s %s waits for the next beat", task, run_id)
            return 0
        return 1
