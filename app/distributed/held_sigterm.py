"""SIGTERM in a forked Celery worker process: the run in hand goes on to its end.

honcho, systemd's default stop and a terminal signal every process of a worker's group,
not only Celery's main process, whose warm shutdown waits for the runs in hand; a signal to
the main process alone is passed on to them (`CeleryWorker.run`). A forked
process's own handler (billiard's) ends it at once, and its run would end `interrupted`.
While a task runs here the signal is held instead: live pauses park at once (a person may
take minutes to sign in), the run ends as it would have, and the signal is delivered again
once the task is done, so the process stops as it was told. Idle, it stops at once.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

# After the task: long enough for its outcome to reach Celery's main process first.
REDELIVER_AFTER_S = 0.5


class HeldSigterm:
    """Holds SIGTERM during a task in this (forked, main-thread) process."""

    def __init__(self, on_held: Callable[[], object]) -> None:
        """`on_held()` runs on a thread of its own once a SIGTERM was held."""
        self._on_held = on_held
        self._held = threading.Event()
        threading.Thread(target=self._watch, daemon=True, name="sigterm-held").start()

    @contextmanager
    def during_task(self) -> Iterator[None]:
        """Hold SIGTERM while the block runs; deliver a held one again after it."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only: nothing to hold here
            return
        previous = signal.signal(signal.SIGTERM, self._hold)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)
            if self._held.is_set():
                again = threading.Timer(REDELIVER_AFTER_S, os.kill, (os.getpid(), signal.SIGTERM))
                again.daemon = True
                again.start()

    @property
    def held(self) -> bool:
        """True once a SIGTERM was held."""
        return self._held.is_set()

    def _hold(self, _signum: int, _frame: FrameType | None) -> None:
        self._held.set()  # nothing else here: the main thread may hold any lock right now

    def _watch(self) -> None:
        self._held.wait()
        self._on_held()
