"""Liveness of the runs this process drives, and recovery of the runs whose driver died.

Every `interval_s` the heartbeat renews `heartbeat_at` on the live runs it drives and
picks up cancel requests other processes wrote for them. The sweep (at start-up, then on
every beat; in a cluster on one process's beat each time) ends `interrupted` the live
runs nobody renewed for three beats (their process died), cancels prompts no run waits
for any more, expires overdue prompts (parked runs hold no thread that would) and
resumes parked runs whose prompt ended while nobody was listening.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Row, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app import db
from app.lifecycle import LIVE, Lifecycle, RunStatus, statuses
from app.models import Grant, Run
from app.models._types import utcnow
from app.services.grants import GrantCoordinator

log = logging.getLogger(__name__)
STALE_BEATS = 3


class Outages(Protocol):
    """What the processes of a cluster tell each other of the database's outages
    (app.distributed.sweep_turns.Outages)."""

    def note(self, hold_s: float) -> None:
        """This process could not reach the database just now; remember it for `hold_s`."""

    def recent(self) -> bool:
        """Whether any process noted an outage that is still held."""


class Heartbeat:
    """One process's beat: renews its runs, relays cancel requests, sweeps up after others."""

    def __init__(
        self,
        *,
        session_factory: Callable[[], Session],
        lifecycle: Lifecycle,
        grants: GrantCoordinator,
        driver_id: str,
        interval_s: float,
        turn: Callable[[], bool] | None = None,
        outages: Outages | None = None,
    ) -> None:
        """`turn()` says whether this beat sweeps (a cluster takes turns, one process per
        beat: app.distributed.sweep_turns); without it every beat sweeps. `outages`
        shares this process's view of the database's outages with the cluster's."""
        self._session_factory = session_factory
        self._turn = turn or (lambda: True)
        self._outages = outages
        # After the database could not be reached, nobody could renew a run for that
        # long: the sweep takes no run for dead until every live driver had a beat since.
        self._outage_hold_s = (STALE_BEATS + 1) * interval_s
        self._unreachable_at = -math.inf
        self._down = False
        self._lifecycle = lifecycle
        self._grants = grants
        self.driver_id = driver_id
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._local: dict[str, threading.Event] = {}
        self._claiming: Counter[str] = Counter()  # claims in flight here: no orphans
        # Runs that ended here whose final write could not reach the database: kept
        # driven here (renewed, never taken for dead) and written on a later beat.
        self._unstored: dict[str, tuple[Callable[[], object], str]] = {}
        self._listeners: list[Callable[[], object]] = []
        self._beat_listeners: list[Callable[[], object]] = []
        self._resumers: list[Callable[[str], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sweeping = False

    def on_tick(self, listener: Callable[[], object]) -> None:
        """Call `listener()` after every sweep (the queue dispatches queued runs)."""
        self._listeners.append(listener)

    def on_beat(self, listener: Callable[[], object]) -> None:
        """Call `listener()` on every beat (the driver stores its runs' output so far)."""
        self._beat_listeners.append(listener)

    def on_orphaned_grant(self, resume: Callable[[str], None]) -> None:
        """Call `resume(grant_id)` for an ended prompt that parked runs still wait for."""
        self._resumers.append(resume)

    # -- runs driven here --------------------------------------------------------------

    def adopt(self, run_id: str) -> threading.Event:
        """This process drives `run_id` from now on; returns the event that cancels it."""
        with self._lock:
            return self._local.setdefault(run_id, threading.Event())

    @contextlib.contextmanager
    def claiming(self, run_id: str) -> Iterator[None]:
        """Around this process's claim of `run_id`: the sweep takes it for no orphan
        meanwhile (it is not cancellable here until adopted). A claim stamps the run's
        heartbeat before its statement, which a loaded database may commit three beats
        later: a run adopted only once its claim returned looked dead to the sweep in
        between. The claimer adopts it inside the block."""
        with self._lock:
            self._claiming[run_id] += 1
        try:
            yield
        finally:
            with self._lock:
                self._claiming[run_id] -= 1
                if not self._claiming[run_id]:
                    del self._claiming[run_id]

    def release(self, run_id: str) -> None:
        """This process stopped driving `run_id` (unless its outcome waits to be stored)."""
        with self._lock:
            if run_id not in self._unstored:
                self._local.pop(run_id, None)

    def keep_unstored(self, run_id: str, store: Callable[[], object], *, what: str) -> None:
        """`run_id` ended here but `store()`, the write of its outcome, could not reach the
        database: the run stays driven here and `store()` is tried again on every beat
        (after the renewal) until it goes through, for as long as this process lives."""
        with self._lock:
            self._local.setdefault(run_id, threading.Event())
            self._unstored[run_id] = (store, what)
        log.warning("%s waits for the database; it is tried again on every beat", what)

    def cancel_local(self, run_id: str) -> bool:
        """Set the cancel event of a run driven here; False if it is not driven here."""
        with self._lock:
            event = self._local.get(run_id)
        if event is None:
            return False
        event.set()
        return True

    def local_runs(self) -> list[str]:
        """The runs this process drives now."""
        with self._lock:
            return list(self._local)

    # -- the beat ----------------------------------------------------------------------

    def start(self, *, sweep: bool = True) -> None:
        """Sweep once now (start-up recovery), then beat in the background; idempotent."""
        with self._lock:
            if self._thread is not None:
                return
            self._sweeping = sweep
            self._thread = threading.Thread(target=self._loop, name="run-heartbeat", daemon=True)
        if sweep:
            self.sweep()
        self._thread.start()

    def stop(self) -> None:
        """Stop beating (the runs still driven here will look dead after three beats)."""
        self._stop.set()
        with self._lock:
            unstored = sorted(self._unstored)
        if unstored:  # the sweep ends them `interrupted` once the database answers
            log.error("stopping with the outcome of %d runs not stored, for the database "
                      "could not be reached: %s", len(unstored), ", ".join(unstored))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
                if self._sweeping and self._turn():
                    self.sweep()
            except SQLAlchemyError as error:  # out of reach for a while: said once, remembered
                if not db.unreachable(error):
                    log.exception("run heartbeat failed")
                    continue
                self._unreachable_at = time.monotonic()
                if self._outages is not None:
                    self._outages.note(self._outage_hold_s)
                if not self._down:
                    self._down = True
                    log.warning("the database cannot be reached (%s): runs keep their outcome"
                                " until it answers, and none is taken for dead meanwhile",
                                type(getattr(error, "orig", error)).__name__)
            except Exception:  # a hiccup must not stop the beat for good
                log.exception("run heartbeat failed")
            else:
                if self._down:
                    self._down = False
                    log.info("the database answers again")

    def _outage_recent(self) -> bool:
        """Whether the database could not be reached lately, by this process or another."""
        if time.monotonic() - self._unreachable_at < self._outage_hold_s:
            return True
        return self._outages is not None and self._outages.recent()

    def beat(self) -> None:
        """Renew this process's live runs and relay the cancel requests written for them."""
        local = self.local_runs()
        if not local:
            return
        live = statuses(LIVE)
        with self._session_factory() as session, session.begin():
            session.execute(  # only those driven now: one whose thread died looks dead
                update(Run)
                .where(Run.driver == self.driver_id, Run.id.in_(local), Run.status.in_(live))
                .values(heartbeat_at=utcnow())
            )
            asked = session.scalars(
                select(Run.id).where(
                    Run.driver == self.driver_id, Run.status.in_(live), Run.cancel_requested
                )
            ).all()
        for run_id in asked:
            if self.cancel_local(run_id):
                self._grants.cancel_run(run_id)
        self._store_unstored()
        # After the renewal: a slow listener must never make a live run look dead.
        for listener in self._beat_listeners:
            listener()

    def _store_unstored(self) -> None:
        """Write the outcomes kept since an outage; one the database refuses for another
        reason than its state is given up (the run is then this process's orphan)."""
        with self._lock:
            kept = list(self._unstored.items())
        for run_id, (store, what) in kept:
            try:
                store()
            except SQLAlchemyError as error:
                if db.unreachable(error):
                    raise  # out of reach again: the loop notes the outage
                log.exception("%s failed; the run is left to the sweep", what)
            else:
                log.info("%s went through on a later beat", what)
            with self._lock:
                self._unstored.pop(run_id, None)
                self._local.pop(run_id, None)

    def sweep(self) -> None:
        """End runs whose driver died, settle stale prompts, resume forgotten parked runs."""
        stale_before = utcnow() - timedelta(seconds=STALE_BEATS * self.interval_s)
        # A run nobody renewed during an outage may well have a driver alive.
        orphans = [] if self._outage_recent() else self._orphans(stale_before)
        for run_id, cancel_requested in orphans:
            if cancel_requested:
                self._lifecycle.cancel_orphan(run_id, stale_before=stale_before)
            elif self._lifecycle.interrupt(run_id, stale_before=stale_before):
                log.warning("run %s interrupted: its driver stopped", run_id)
        self._grants.expire_due()
        self._grants.cancel_unwatched()
        with self._session_factory() as session:
            ended = session.scalars(
                select(Grant.id)
                .join(Run, Run.waiting_grant_id == Grant.id)
                .where(Run.status == str(RunStatus.PARKED), Grant.state != "pending")
                .distinct()
            ).all()
        for grant_id in ended:
            for resume in self._resumers:
                resume(grant_id)
        for listener in self._listeners:
            listener()

    def _orphans(self, stale_before: datetime) -> Sequence[Row[str, bool]]:
        """Live runs nobody renewed since `stale_before` and not driven (or being claimed)
        here now: other processes' and this one's own whose thread ended without ending them."""
        with self._lock:
            local = [*self._local, *self._claiming]
        with self._session_factory() as session:
            return session.execute(
                select(Run.id, Run.cancel_requested).where(
                    Run.status.in_(statuses(LIVE)),
                    Run.driver.is_distinct_from(self.driver_id) | Run.id.not_in(local),
                    (Run.heartbeat_at.is_(None)) | (Run.heartbeat_at < stale_before),
                )
            ).all()
