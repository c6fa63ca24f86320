"""Run ends, announced on Redis and heard by the `wait`s of any web process (DESIGN §7).

The process that ends a run (a worker, or a web process cancelling a queued one)
publishes the run id on one channel after the final state is committed, with the run as
it ended when that is small (most runs: `MAX_CARRIED_BYTES`). A waiter registered before
the run could end (at `expect`, when the run is sent) is answered by that announcement
alone, without reading the run's row (or reads it once, for a run too large to carry); a
waiter that came later reads the row once first, and everyone re-reads it after Redis
came back (announcements may have been lost meanwhile) or when its time is up.
A pause for a sign-in is announced there too (`"paused": true`): it ends a `wait` as
well, which reads the row then (the prompt may have been answered and the run gone on
meanwhile: it waits on).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from app.distributed.pubsub import RedisListener

log = logging.getLogger(__name__)

EXPECT_S = 60.0  # an expectation nobody waited on is dropped after this long
# Every web process hears every announcement: a run larger than this is read by its
# waiter instead of travelling to all of them.
MAX_CARRIED_BYTES = 16 * 1024


class _Waiter:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.ended = False  # set only by the run's own announcement
        self.run: dict[str, Any] | None = None  # as it ended, when the announcement held it
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

    def announce(self, run_id: str, run: dict[str, Any] | None = None) -> None:
        """The run reached a final state (committed): wake its waiters everywhere, and
        hand them the run as it ended if it is small."""
        message = json.dumps({"id": run_id, "run": run}, separators=(",", ":"), default=str)
        if run is None or len(message) > MAX_CARRIED_BYTES:
            message = json.dumps({"id": run_id})
        self._client.publish(self._channel, message)

    def announce_pause(self, run_id: str) -> None:
        """The run paused for a sign-in (committed): its waiters everywhere read its row.
        (A process of the previous release takes it for an end, reads the row, finds the
        run not final and answers it as still going: what this release answers too.)"""
        self._client.publish(self._channel, json.dumps({"id": run_id, "paused": True}))

    def expect(self, run_id: str) -> None:
        """Listen for the run's end before it can happen (call before sending it). With
        Redis out of reach nothing is listened for: a `wait` then reads the row."""
        try:
            self._listen()
        except redis.RedisError as error:
            log.warning("Redis is unreachable (%s); a wait for run %s reads its row", error,
                        run_id)
            return
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

    def wait(
        self, run_id: str, timeout: float, read: Callable[[str], dict[str, Any] | None]
    ) -> dict[str, Any] | None:
        """Block until the run ends or pauses for a sign-in, or `timeout` passes: the run
        as it ended (or as it is once paused), or None. `read(run_id)` reads the row (the
        run if it is final or paused, else None); a pause's announcement makes the waiter
        read it. With Redis out of reach no end can be heard: the row as it is now,
        without waiting (a request must not hold its thread, nor fail and be sent again
        into a second run)."""
        try:
            self._listen()
        except redis.RedisError:
            return read(run_id)
        with self._lock:
            waiter = self._expected.pop(run_id, None)
            look = waiter is None  # not heard from the start: it may have ended already
            if waiter is None:
                waiter = _Waiter()
                self._waiters.setdefault(run_id, []).append(waiter)
        deadline = time.monotonic() + timeout
        try:
            while not waiter.ended:
                if look:
                    waiter.event.clear()  # before reading: a later announcement still wakes
                    run = read(run_id)
                    if run is not None:
                        return run
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                waiter.event.wait(remaining)
                look = True
            return waiter.run if waiter.run is not None else read(run_id)
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

    def _heard(self, message: str) -> None:
        paused = False
        if message.startswith("{"):
            announced = json.loads(message)
            run_id, run = str(announced["id"]), announced.get("run")
            paused = bool(announced.get("paused"))
        else:  # a process of the previous release announces the bare id
            run_id, run = message, None
        with self._lock:
            waiters = list(self._waiters.get(run_id, ()))
        for waiter in waiters:
            if not paused:
                waiter.run = run
                waiter.ended = True
            waiter.event.set()  # paused: it reads the row, which says whether it still is

    def _wake_all(self) -> None:
        # Announcements may have been lost while Redis was away: waiters re-read the row.
        with self._lock:
            waiters = [waiter for waiters in self._waiters.values() for waiter in waiters]
        for waiter in waiters:
            waiter.event.set()
