"""Run ends, announced on Redis and heard by the `wait`s of any web process (DESIGN §7).

The process that ends a run (a worker, or a web process cancelling a queued one)
publishes the run id on one channel after the final state is committed. A waiter
registered before the run could end (at `expect`, when the run is sent) is woken by that
announcement alone, without reading the run's row; a waiter that came later reads the
row once first, and everyone re-reads it after Redis came back (announcements may have
been lost meanwhile) or when its time is up.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import redis

from app.distributed.pubsub import RedisListener

EXPECT_S = 60.0  # an expectation nobody waited on is dropped after this long


class _Waiter:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.ended = False  # set only by the run's own announcement
        self.since = time.monotonic()


class RunEnds:
    """Announces run ends and wakes the waiters of this process."""

    def __init__(self, client: redis.Redis, listener: RedisListener, channel: str) -> None:
        self._client = client
        self._listener = listener
        self._channel = channel
        self._lock = threading.Lock()
        self._waiters: dict[str, list[_Waiter]] = {}
        self._expected: dict[str, _Waiter] = {}  # in the order they were made
        self._listening_pid = -1
        self._listen_lock = threading.Lock()

    def announce(self, run_id: str) -> None:
        """The run reached a final state (committed): wake its waiters everywhere."""
        self._client.publish(self._channel, run_id)

    def expect(self, run_id: str) -> None:
        """Listen for the run's end before it can happen (call before sending it)."""
        self._listen()
        waiter = _Waiter()
        with self._lock:
            stale = waiter.since - EXPECT_S
            while self._expected:
                oldest_id, oldest = next(iter(self._expected.items()))
                if oldest.since > stale:
                    break
                del self._expected[oldest_id]
                self._forget(oldest_id, oldest)
            self._expected[run_id] = waiter
            self._waiters.setdefault(run_id, []).append(waiter)

    def wait(self, run_id: str, timeout: float, ended: Callable[[str], bool]) -> bool:
        """Block until the run ends or `timeout` passes; `ended(run_id)` reads the row."""
        self._listen()
        with self._lock:
            waiter = self._expected.pop(run_id, None)
            read = waiter is None  # not heard from the start: it may have ended already
            if waiter is None:
                waiter = _Waiter()
                self._waiters.setdefault(run_id, []).append(waiter)
        deadline = time.monotonic() + timeout
        try:
            while not waiter.ended:
                if read:
                    waiter.event.clear()  # before reading: a later announcement still wakes
                    if ended(run_id):
                        return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                waiter.event.wait(remaining)
                read = True
            return True
        finally:
            with self._lock:
                self._forget(run_id, waiter)

    def _forget(self, run_id: str, waiter: _Waiter) -> None:
        waiters = self._waiters.get(run_id, [])
        if waiter in waiters:
            waiters.remove(waiter)
        if not waiters:
            self._waiters.pop(run_id, None)

    def _listen(self) -> None:
        # Returns only once Redis confirmed the subscription (in this process: a forked
        # child subscribes afresh), so an announcement made after it is never missed.
        if self._listening_pid == os.getpid():
            return
        with self._listen_lock:
            if self._listening_pid == os.getpid():
                return
            self._listener.subscribe(self._channel, self._heard)
            self._listener.on_reconnect(self._wake_all)
            self._listening_pid = os.getpid()

    def _heard(self, run_id: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(run_id, ()))
        for waiter in waiters:
            waiter.ended = True
            waiter.event.set()

    def _wake_all(self) -> None:
        # Announcements may have been lost while Redis was away: waiters re-read the row.
        with self._lock:
            waiters = [waiter for waiters in self._waiters.values() for waiter in waiters]
        for waiter in waiters:
            waiter.event.set()
