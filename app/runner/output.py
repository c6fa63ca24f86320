"""A live run's output: each chunk numbered for the pages, and kept in the run's row as it grows.

A page opened while a run is running shows the output stored so far, then the live
chunks; each chunk carries its offset in the whole output, so the page skips what the
stored output already holds and fetches again when it sees a gap. Storing every line
would cost one UPDATE per print: the output is stored at most every `STORE_EVERY_S` when
a chunk arrives, and what is left is stored by the heartbeat's next beat.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from app.lifecycle import Lifecycle

if TYPE_CHECKING:
    from app.runner.driver import DrivenRun

STORE_EVERY_S = 0.5


class _Tap:
    """One run's output as delivered so far, and how much of it its row holds."""

    def __init__(self, run: DrivenRun) -> None:
        self.run = run
        # A resumed run starts from the output stored when it parked: the replay does not
        # deliver that again, so new chunks continue after it.
        self.parts = [run.output or ""]
        self.length = len(self.parts[0])
        self.stored = self.length
        self.stored_at = 0.0
        self.writing = threading.Lock()  # one write at a time: a row never goes back


class LiveOutput:
    """The output of the runs driven in this process."""

    def __init__(self, *, lifecycle: Lifecycle, clock: Callable[[], float] = time.monotonic):
        self._lifecycle = lifecycle
        self._clock = clock
        self._lock = threading.Lock()
        self._taps: dict[str, _Tap] = {}

    def open(self, run: DrivenRun) -> Callable[[str], None]:
        """Start following `run`; returns the handler for its output chunks."""
        tap = _Tap(run)
        with self._lock:
            self._taps[run.id] = tap

        def deliver(text: str) -> None:
            with self._lock:
                offset = tap.length
                tap.parts.append(text)
                tap.length += len(text)
            self._lifecycle.output(run, text, offset=offset)
            if self._clock() - tap.stored_at >= STORE_EVERY_S:
                self._store(tap)

        return deliver

    def close(self, run_id: str) -> None:
        """Stop following the run (its outcome, output included, is written next)."""
        with self._lock:
            self._taps.pop(run_id, None)

    def store_pending(self) -> None:
        """Store the output not yet in the rows (called on every heartbeat beat)."""
        with self._lock:
            pending = [tap for tap in self._taps.values() if tap.stored < tap.length]
        for tap in pending:
            self._store(tap)

    def _store(self, tap: _Tap) -> None:
        with tap.writing:
            with self._lock:
                if self._taps.get(tap.run.id) is not tap or tap.stored == tap.length:
                    return
                text = "".join(tap.parts)
                tap.parts = [text]
                tap.stored, tap.stored_at = tap.length, self._clock()
            # Outside the bus-wide lock (a database write); a write after the run ended or
            # parked is refused by `store_output`, which only writes runs still live.
            self._lifecycle.store_output(tap.run.id, text)
