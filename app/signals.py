"""The in-memory GrantSignals: a run waiting in this process learns how its grant ended.

Embedded default for one process; a Redis implementation would publish the outcome so a
run waiting in another process wakes too.
"""

from __future__ import annotations

import threading
import time

from app.seams import GrantOutcome

_CANCELLED = GrantOutcome("cancelled")


class InMemoryGrantSignals:
    """Outcomes kept while someone waits for them, and a Condition to wake the waiters."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._outcomes: dict[str, GrantOutcome] = {}
        self._waiters: dict[str, int] = {}
        self._cancelled_runs: set[str] = set()

    def notify(self, grant_id: str, outcome: GrantOutcome) -> None:
        """The grant ended: wake everyone waiting for it."""
        with self._cond:
            if self._waiters.get(grant_id):
                self._outcomes[grant_id] = outcome
            self._cond.notify_all()

    def wait(self, grant_id: str, run_id: str | None, timeout: float) -> GrantOutcome | None:
        """Block up to `timeout` for the grant's outcome; None when time ran out first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._waiters[grant_id] = self._waiters.get(grant_id, 0) + 1
            try:
                while grant_id not in self._outcomes:
                    if run_id is not None and run_id in self._cancelled_runs:
                        return _CANCELLED
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    self._cond.wait(timeout=remaining)
                return self._outcomes[grant_id]
            finally:
                self._waiters[grant_id] -= 1
                if not self._waiters[grant_id]:
                    del self._waiters[grant_id]
                    self._outcomes.pop(grant_id, None)

    def cancel_run(self, run_id: str) -> None:
        """Wake the run (if it waits) with `cancelled`."""
        with self._cond:
            self._cancelled_runs.add(run_id)
            self._cond.notify_all()

    def forget_run(self, run_id: str, *, parked: bool = False) -> None:
        """Drop what is kept about a run that ended (or parked)."""
        with self._cond:
            self._cancelled_runs.discard(run_id)
