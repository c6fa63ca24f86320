"""The embedded RunQueue: runs execute on threads of this process (DESIGN §7).

The queue is the `runs` table itself: `submit` only wakes the dispatcher, which claims
queued runs (oldest first) while the user's and the facility's caps allow, so runs over
a cap wait visibly `queued` and survive a restart. A claim is the lifecycle's
conditional move queued -> running, so two processes never start one run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app import db
from app.lifecycle import RunStatus, is_final, is_paused
from app.models import Run
from app.runner.caps import live_counts, under_caps
from app.runner.driver import DRIVEN_COLUMNS
from app.runner.parts import EngineParts
from app.runner.pool import RunThreads
from app.services.webhook_events import WebhookSender
from sandbox import PARKED

log = logging.getLogger(__name__)
_DISPATCH_BATCH = 200
# Runs that ended lately, kept for a `wait` that comes after the end (a run that ended
# between its submit and the caller's `wait`): it is answered without a read.
_RECENT_ENDINGS = 32
# Runs this process claimed lately: a dispatch may claim a run between its commit and its
# submit, which then finds it started instead of taking the failed claim for a full queue.
_RECENT_CLAIMS = 4096


class Ending:
    """Where a run's `wait`s learn that it ended, and how (the final move's row), or that
    it paused for a sign-in (each pause counts: a resumed run may pause again)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.ended = False
        self.run: dict[str, Any] | None = None
        self.pauses = 0

    def end(self, run: dict[str, Any] | None) -> None:
        with self._changed:
            self.run = run
            self.ended = True
            self._changed.notify_all()

    def pause(self) -> None:
        with self._changed:
            self.pauses += 1
            self._changed.notify_all()

    def wait(self, pauses_seen: int, timeout: float) -> int:
        """Block until the run ends or pauses past `pauses_seen`, or `timeout` passes;
        the pauses counted then."""
        with self._changed:
            self._changed.wait_for(lambda: self.ended or self.pauses > pauses_seen, timeout)
            return self.pauses


def settled_run(session_factory: Callable[[], Session], run_id: str) -> dict[str, Any] | None:
    """The run (`to_dict`) if it ended or waits for a person (a sign-in), else None (also
    when the database cannot be reached to say: a waiting request answers the run as it
    knows it)."""
    try:
        with session_factory() as session:
            run = session.get(Run, run_id)
            if run is not None and (is_final(run.status) or is_paused(run.status)):
                return run.to_dict()
            return None
    except DBAPIError as error:
        if not db.unreachable(error):
            raise
        return None


class ThreadRunQueue:
    """Starts, resumes and cancels runs on threads of this process (implements RunQueue)."""

    def __init__(self, parts: EngineParts) -> None:
        self._parts = parts
        # Webhooks go out on a few threads of their own: a slow receiver holds no run.
        self._senders = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook")
        self._sending: set[Future[None]] = set()  # deliveries submitted and not done
        self._lock = threading.Lock()
        self._dispatch_lock = threading.Lock()
        self._done: dict[str, Ending] = {}
        self._ended: OrderedDict[str, Ending] = OrderedDict()  # the last _RECENT_ENDINGS ones
        self._claimed: OrderedDict[str, None] = OrderedDict()  # the last _RECENT_CLAIMS ones
        self._ready: set[str] = set()  # parked runs whose prompt ended: to resume
        self._threads = RunThreads()
        self._driving: dict[str, threading.Event] = {}  # set when its drive returned
        # True while queued (or ready) runs may wait for a slot: until a dispatch finds
        # none left, submits go through it (oldest first) and ended runs dispatch again.
        self._backlog = True
        self._closing = False
        parts.grants.on_resolved(self.resume_waiting_for)
        parts.lifecycle.on_end(self._mark_done)  # every final move wakes the run's `wait`
        parts.lifecycle.on_pause(self._mark_paused)  # and so does a pause for a sign-in
        self._parts.heartbeat.on_tick(self.dispatch)
        self._parts.heartbeat.on_tick(self.deliver_due)
        self._parts.heartbeat.on_orphaned_grant(self.resume_waiting_for)

    # -- RunQueue ----------------------------------------------------------------------

    def submit(self, run_id: str) -> None:
        """Start the queued run when the caps allow (it stays `queued` until then)."""
        with self._lock:
            if run_id in self._claimed:  # a dispatch started it already
                return
            self._done.setdefault(run_id, Ending())
        self._parts.heartbeat.start()
        # Nothing waits before it: claim it at once (one conditional UPDATE, caps included).
        if not self._backlog and not self._closing:
            with self._dispatch_lock:  # claims are made under it: the check below is final
                with self._lock:
                    if run_id in self._claimed:
                        return
                try:
                    claimed = self._claim(run_id, resuming=False)
                except DBAPIError as error:
                    if not db.unreachable(error):
                        raise
                    # Stored and queued: a beat's dispatch starts it once the database
                    # answers. The request that stored it must not fail (and be retried
                    # into a second run) for the claim alone.
                    self._backlog = True
                    return
                if claimed is not None:
                    self._spawn(run_id, claimed)
                    return
                self._backlog = True  # over a cap, or a run queued elsewhere came first
        self.dispatch()

    def resume(self, run_id: str) -> None:
        """Continue a parked run whose grant ended, by replaying its journal.

        It goes through the dispatcher like a queued run (before them: it started
        earlier), so resuming many parked runs at once stays within the caps.
        """
        if self._closing:
            return  # it stays parked; the next process to start resumes it
        with self._lock:
            self._ready.add(run_id)
        self._parts.heartbeat.start()
        self.dispatch()

    def cancel(self, run_id: str) -> bool:
        """Cancel a run in any non-final state; False when it had already ended."""
        if self._parts.heartbeat.cancel_local(run_id):
            self._parts.grants.cancel_run(run_id)
            return True
        if self._parts.lifecycle.cancel_idle(run_id):  # its `wait` is woken by the end hook
            self._parts.grants.cancel_unwatched()
            return True
        # Live in another process (or in one that died): its heartbeat picks the request up,
        # and the sweep cancels it if that process is gone.
        return self._parts.lifecycle.request_cancel(run_id)

    def wait(self, run_id: str, timeout: float) -> dict[str, Any] | None:
        """Block until the run ends here, or pauses for a sign-in, or `timeout` passes: the
        run as it ended (or as it is once paused), or None while it goes on."""
        with self._lock:
            done = self._done.get(run_id) or self._ended.get(run_id)
        if done is None:  # it may have ended (or paused) before we looked
            return settled_run(self._parts.session_factory, run_id)
        deadline = time.monotonic() + timeout
        seen = 0  # counted from its submit: a pause before this wait began counts too
        while True:
            pauses = done.wait(seen, max(0.0, deadline - time.monotonic()))
            if done.ended and done.run is not None:
                return done.run  # as its final move returned it: no read
            if done.ended or pauses == seen:  # ended elsewhere, or the time is up
                return settled_run(self._parts.session_factory, run_id)
            seen = pauses
            paused = settled_run(self._parts.session_factory, run_id)
            if paused is not None:
                return paused
            # Answered already (it goes on): wait on for its end or its next pause.

    def deliver(self, delivery_id: str) -> None:
        """Send a webhook delivery on a sender thread; a retry is sent by a later tick."""
        if self._parts.webhooks is None or self._closing:
            return
        self._parts.heartbeat.start()  # its tick sends the retries
        try:
            future = self._senders.submit(self._send_webhook, self._parts.webhooks, delivery_id)
        except RuntimeError:  # shut down meanwhile: the delivery stays pending
            return
        with self._lock:
            self._sending.add(future)
        future.add_done_callback(self._sent)

    def _sent(self, future: Future[None]) -> None:
        with self._lock:
            self._sending.discard(future)

    def deliver_due(self) -> None:
        """Send the deliveries whose retry is due (a heartbeat listener)."""
        if self._parts.webhooks is not None and not self._closing:
            for delivery_id in self._parts.webhooks.due():
                self.deliver(delivery_id)

    @staticmethod
    def _send_webhook(sender: WebhookSender, delivery_id: str) -> None:
        try:
            sender.send(delivery_id)
        except Exception:  # the delivery stays pending; the next tick tries again
            log.exception("webhook delivery %s failed", delivery_id)

    def shutdown(self, timeout: float) -> None:
        """Stop taking runs; park the paused ones, let running runs finish within `timeout`,
        then stop beating. A run still going when the time is up is ended `interrupted` by
        the next start; parked runs resume there.
        """
        self._closing = True
        self._parts.grants.park_all()
        self._senders.shutdown(wait=False, cancel_futures=True)  # pending ones stay pending
        with self._lock:
            driving = list(self._driving.values())
            sending = list(self._sending)
        deadline = time.monotonic() + timeout
        for returned in driving:
            returned.wait(max(0.0, deadline - time.monotonic()))
        # A delivery being sent finishes (or is cut off with the process): its record is
        # written before its connection goes back, so none is left open behind the pool.
        wait_for(sending, timeout=max(0.0, deadline - time.monotonic()))
        self._parts.heartbeat.stop()

    # -- dispatching -------------------------------------------------------------------

    def dispatch(self) -> int:
        """Resume ready parked runs, then claim queued runs (oldest first), within the caps;
        how many started."""
        if self._closing:
            return 0
        with self._dispatch_lock:
            with self._lock:
                ready = list(self._ready)[:_DISPATCH_BATCH]
            with self._parts.session_factory() as session:
                parked = session.execute(
                    select(Run.id, Run.user_id, Run.facility_id)
                    .where(Run.id.in_(ready), Run.status == str(RunStatus.PARKED))
                    .order_by(Run.created_at)
                ).all() if ready else []
                queued = session.execute(
                    select(Run.id, Run.user_id, Run.facility_id)
                    .where(Run.status == str(RunStatus.QUEUED))
                    .order_by(Run.created_at)
                    .limit(_DISPATCH_BATCH)
                ).all()
                candidates = [*parked, *queued]
                per_user, per_facility = live_counts(
                    session,
                    {row.user_id for row in candidates},
                    {row.facility_id for row in candidates},
                )
            resuming = {row.id for row in parked}
            with self._lock:
                self._ready.difference_update(set(ready) - resuming)
            started, left = 0, len(queued) == _DISPATCH_BATCH
            for row in candidates:
                claimed = None
                if (
                    per_user[row.user_id] < self._parts.caps.per_user
                    and per_facility[row.facility_id] < self._parts.caps.per_facility
                ):
                    claimed = self._claim(row.id, resuming=row.id in resuming)
                if claimed is None:
                    left = True
                    continue
                per_user[row.user_id] += 1
                per_facility[row.facility_id] += 1
                self._spawn(row.id, claimed)
                started += 1
            self._backlog = left
            return started

    def _claim(self, run_id: str, *, resuming: bool) -> Row[Any] | None:
        """The run moved to running for this process: its row with what its driver needs."""
        verb = self._parts.lifecycle.start
        if resuming:
            with self._lock:
                self._ready.discard(run_id)
            verb = self._parts.lifecycle.resume
        with self._parts.heartbeat.claiming(run_id):  # no orphan to its sweep meanwhile
            claimed = verb(run_id, driver=self._parts.driver.driver_id,
                           where=under_caps(self._parts.caps), returning=DRIVEN_COLUMNS)
            if claimed is not None:
                self._parts.heartbeat.adopt(run_id)  # driven here (cancellable) from now
        return claimed

    def resume_waiting_for(self, grant_id: str) -> None:
        """Resume every parked run that waited for this grant (it just ended)."""
        with self._parts.session_factory() as session:
            parked = session.scalars(
                select(Run.id).where(
                    Run.waiting_grant_id == grant_id, Run.status == str(RunStatus.PARKED)
                )
            ).all()
        if parked and not self._closing:
            with self._lock:
                self._ready.update(parked)
            self._parts.heartbeat.start()
            self.dispatch()

    def _spawn(self, run_id: str, claimed: Row[Any]) -> None:
        self._parts.heartbeat.adopt(run_id)  # cancellable from now on, before the thread runs
        with self._lock:
            self._claimed[run_id] = None
            if len(self._claimed) > _RECENT_CLAIMS:
                self._claimed.popitem(last=False)
            self._done.setdefault(run_id, Ending())
            self._driving[run_id] = threading.Event()
        self._threads.run(f"run-{run_id[:8]}", lambda: self._drive(run_id, claimed))

    def _drive(self, run_id: str, claimed: Row[Any]) -> None:
        outcome = None
        try:
            outcome = self._parts.driver.drive(run_id, claimed)
        finally:
            with self._lock:
                returned = self._driving.pop(run_id, None)
            if returned is not None:
                returned.set()
            if outcome is not None and outcome.status == PARKED:
                self._resume_if_answered(run_id)
            else:
                # Its final move may not have been this process's (the sweep of another
                # one ended it first) or may have failed: its `wait`s read the row.
                self._mark_done(run_id)
            with self._lock:
                ready = bool(self._ready)
            if self._backlog or ready:
                self.dispatch()  # a slot under the caps opened for a run that waits

    def _resume_if_answered(self, run_id: str) -> None:
        """A prompt answered while its run was parking is not missed (or left to the sweep)."""
        with self._parts.session_factory() as session:
            grant_id = session.scalar(select(Run.waiting_grant_id).where(Run.id == run_id))
        if grant_id is not None and self._parts.grants.outcome(grant_id) is not None:
            with self._lock:
                self._ready.add(run_id)

    def _mark_paused(self, run_id: str) -> None:
        with self._lock:
            done = self._done.get(run_id)
        if done is not None:
            done.pause()

    def _mark_done(self, run_id: str, run: dict[str, Any] | None = None) -> None:
        with self._lock:
            done = self._done.pop(run_id, None)
            if done is not None and run is not None:
                self._ended[run_id] = done
                if len(self._ended) > _RECENT_ENDINGS:
                    self._ended.popitem(last=False)
        if done is not None:
            done.end(run)
