"""Deadlines on outbound calls: a wall-clock limit from connect to the body's last byte.

A per-read timeout alone lets a peer that sends a byte every few seconds hold a call as
long as it likes. The guarded transport (app.integrations.transport) hands each connection
a call under a `Deadline` uses to that deadline while it is out of its pool; one watchdog
thread per process shuts those connections down when the deadline passes.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from typing import Any, Protocol

import requests


class Held(Protocol):
    """A connection a Deadline can hold: the transport's guarded urllib3 connections."""

    deadline: Deadline | None
    sock: socket.socket | None


_local = threading.local()


def current_deadline() -> Deadline | None:
    """The Deadline of the `with deadline:` block this thread is in, if any."""
    found: Deadline | None = getattr(_local, "deadline", None)
    return found


class DeadlinePassed(requests.exceptions.Timeout):
    """A call made under a Deadline did not end in time (connect, headers or body)."""


class Deadline:
    """A wall-clock limit on the requests made in `with deadline:` blocks, connect to last byte.

    A per-read timeout alone lets a peer that sends a byte every few seconds hold a call as
    long as it likes. Under a Deadline no per-read timeout is longer than the time left, and
    when it passes the connections its calls hold are shut down, which wakes a read blocked
    on them (a TLS handshake's too); the block then raises DeadlinePassed. A connection is
    held from its socket's making (or its taking from the pool) until it goes back to the
    pool or is closed, so a streamed body read in a later block is bounded as well.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.passed = False
        self._held: dict[Held, socket.socket] = {}
        self._watched = False  # handed to the watchdog (once: its time does not move)
        self._lock = threading.Lock()
        self._outer: Deadline | None = None

    def left(self) -> float:
        """Seconds until the deadline (negative once it has passed)."""
        return self.at - time.monotonic()

    def __enter__(self) -> Deadline:
        self._outer, _local.deadline = current_deadline(), self
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, trace: Any) -> None:
        _local.deadline = self._outer
        with self._lock:
            for conn in [conn for conn in self._held if conn.sock is None]:
                self._let_go(conn)  # closed on an error: our copy must not keep it open
        # What the block read may be cut short, or its error be the cut itself (a library
        # that parses the answer, oauthlib say, reads half a header as a bad answer).
        if self.passed and (exc is None or isinstance(exc, Exception)):
            raise DeadlinePassed(f"no answer within {self.seconds:g} s") from exc

    def hold(self, conn: Held, sock: socket.socket) -> None:
        """Shut `sock` down if the deadline passes before `conn` is let go."""
        with self._lock:
            if conn in self._held:
                return
            # A duplicate descriptor: shutting it down ends the connection wherever it is
            # read, and it cannot name another socket if the connection's own is closed.
            self._held[conn] = socket.fromfd(sock.fileno(), sock.family, sock.type)
            conn.deadline = self
            if self.passed or self.left() <= 0:
                self._cut()
            elif not self._watched:
                self._watched = True
                _WATCHDOG.watch(self)

    def let_go(self, conn: Held) -> None:
        """`conn` is back in its pool: the deadline no longer cuts it."""
        with self._lock:
            self._let_go(conn)

    def _let_go(self, conn: Held) -> None:
        copy = self._held.pop(conn, None)
        conn.deadline = None
        if copy is not None:
            copy.close()

    def expire(self) -> None:
        """The deadline has passed (seen by its watchdog, or by a caller that waited out its
        time): cut the connections it holds; its block raises DeadlinePassed."""
        with self._lock:
            self._cut()

    def _cut(self) -> None:
        self.passed = True
        for conn, copy in self._held.items():
            conn.deadline = None
            with contextlib.suppress(OSError):  # already closed by the peer
                copy.shutdown(socket.SHUT_RDWR)
            copy.close()
        self._held.clear()


class _Watchdog:
    """One thread per process that cuts the deadlines as they pass. A timer thread per
    call had cost a thread's start on every integration call (bench/broker.py: the
    broker's overhead from 1.24-1.32 to 1.42-1.57 times a direct call)."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._due: list[tuple[float, int, Deadline]] = []  # a heap, soonest first
        self._order = itertools.count()  # ties never compare two Deadlines
        self._thread: threading.Thread | None = None

    def watch(self, deadline: Deadline) -> None:
        """Cut `deadline` when it passes (if it still holds a connection then)."""
        with self._ready:
            heapq.heappush(self._due, (deadline.at, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():  # none yet, or forked
                self._thread = threading.Thread(
                    target=self._run, name="outbound-deadlines", daemon=True
                )
                self._thread.start()
            elif self._due[0][2] is deadline:
                self._ready.notify()  # sooner than the one it sleeps for

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._ready.wait(self._due[0][0] - time.monotonic() if self._due else None)
                _at, _order, deadline = heapq.heappop(self._due)
            deadline.expire()  # outside the condition: hold() takes the deadline's lock first


_WATCHDOG = _Watchdog()


def _new_watchdog() -> None:
    # A forked child (a gunicorn or Celery worker) starts with no thread and a fresh lock:
    # the parent's could have been held at the fork.
    global _WATCHDOG
    _WATCHDOG = _Watchdog()


os.register_at_fork(after_in_child=_new_watchdog)
