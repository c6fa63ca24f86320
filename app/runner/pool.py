"""Threads that drive runs, kept for the next run instead of one new thread per run.

Starting a thread costs a run more than its creation: `Thread.start` waits until the new
thread got the CPU, which on a busy machine is a scheduling round of its own. A thread
that finished a run waits here for the next one, and ends after `idle_s` without work.
There is no upper bound: each live run (a paused one too) holds its thread, as before.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

IDLE_S = 60.0


class RunThreads:
    """Runs jobs on reusable daemon threads, each named `run-<id>` while it drives a run."""

    def __init__(self, *, idle_s: float = IDLE_S) -> None:
        self._idle_s = idle_s
        self._jobs: queue.SimpleQueue[tuple[str, Callable[[], None]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a job and not yet promised one

    def run(self, name: str, job: Callable[[], None]) -> None:
        """Call `job()` on an idle thread, or on a new one when none is idle."""
        with self._lock:
            spare = self._idle > 0
            if spare:
                self._idle -= 1
        self._jobs.put((name, job))
        if not spare:
            threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _serve(self) -> None:
        me = threading.current_thread()
        while True:
            try:
                name, job = self._jobs.get(timeout=self._idle_s)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # not promised to a job: leave
                        self._idle -= 1
                        return
                continue  # a job was promised to an idle thread: take it
            me.name = name
            try:
                job()
            finally:
                me.name = "run-idle"
                with self._lock:
                    self._idle += 1
