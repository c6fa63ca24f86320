"""Name lookups of outbound calls, bounded by the current deadline (deadlines.Deadline).

`socket.getaddrinfo` cannot be interrupted, and a resolver that does not answer takes its
whole timeout (often 5 s times its attempts), so a lookup would overrun any deadline. Under
a Deadline the lookup runs on a small pool of daemon threads and the caller waits only the
time left; a lookup it gives up on finishes on its own thread. Without a Deadline, and
for an IP literal (no resolver is asked), the lookup is the plain call on the caller's
thread: no thread hop on that path.

Lookups never queue for the pool: while every one of its threads waits on a resolver (a
scripter's integration on a name whose servers never answer can keep them so), the next
lookup is made on its caller's thread, bounded by the resolver as before. One facility's
stuck lookups must not make every other facility's new connections time out.
"""

from __future__ import annotations

import ipaddress
import os
import queue
import socket
import threading
from collections.abc import Sequence
from concurrent.futures import Future, wait
from typing import Any

from app.integrations.deadlines import current_deadline

# How many lookups run on the pool at once in a process. Stuck lookups hold their threads
# until the resolver gives up; past this many, a lookup is made on its caller's thread
# rather than each stuck one costing a new thread.
WORKERS = 8

# One entry of getaddrinfo's answer: family, type, proto, canonname, sockaddr.
AddressInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]


class LookupTimedOut(TimeoutError):
    """A name lookup made under a Deadline was not answered before the deadline passed."""

    def __init__(self, host: str, seconds: float) -> None:
        super().__init__(f"looking up {host} took longer than the call's {seconds:g} s")
        self.host = host


def getaddrinfo(host: str, port: int) -> Sequence[AddressInfo]:
    """`socket.getaddrinfo(host, port, type=SOCK_STREAM)`, given up on (LookupTimedOut)
    when the current Deadline passes first; that Deadline then counts as passed."""
    deadline = current_deadline()
    if deadline is None or _literal(host):
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    future = _POOL.submit(host, port)
    if future is None:  # every lookup thread is stuck: wait on the resolver, as without one
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    done, _pending = wait((future,), timeout=max(deadline.left(), 0.0))
    if not done:
        future.cancel()  # not taken yet: no thread will look it up
        # The deadline has passed: it cuts what the call holds, and its block says so.
        deadline.expire()
        raise LookupTimedOut(host, deadline.seconds)
    return future.result()


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return True


class _Pool:
    """WORKERS daemon threads taking lookups from a queue, started at the first lookup; a
    lookup is handed over only while a thread is free for it.

    Not concurrent.futures.ThreadPoolExecutor: its threads are joined at interpreter exit,
    so one stuck lookup would hold a stopping worker process for the resolver's timeout.
    A lookup abandoned before a thread took it is dropped, never made.
    """

    def __init__(self) -> None:
        self._work: queue.SimpleQueue[tuple[Future[Sequence[AddressInfo]], str, int]] = (
            queue.SimpleQueue()
        )
        self._free = threading.Semaphore(WORKERS)  # threads not holding a lookup
        self._lock = threading.Lock()
        self._started = False

    def submit(self, host: str, port: int) -> Future[Sequence[AddressInfo]] | None:
        """Hand a lookup to a free thread; its answer (or error) comes on the Future. None
        when every thread holds a lookup."""
        if not self._free.acquire(blocking=False):
            return None
        future: Future[Sequence[AddressInfo]] = Future()
        self._work.put((future, host, port))
        if not self._started:
            with self._lock:
                if not self._started:
                    for number in range(WORKERS):
                        threading.Thread(
                            target=self._run, name=f"outbound-lookup-{number}", daemon=True
                        ).start()
                    self._started = True
        return future

    def _run(self) -> None:
        while True:
            future, host, port = self._work.get()
            try:
                if not future.set_running_or_notify_cancel():
                    continue  # its caller gave up before this thread took it
                try:
                    answer = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                except BaseException as exc:  # handed to the caller, who raises it
                    future.set_exception(exc)
                else:
                    future.set_result(answer)
            finally:
                self._free.release()
            del future  # not kept alive (with its answer) while waiting for the next


_POOL = _Pool()


def _new_pool() -> None:
    # A forked child (a gunicorn or Celery worker) has none of the parent's threads, and
    # its copy of the queue may hold the parent's lookups: a fresh pool, started lazily.
    global _POOL
    _POOL = _Pool()


os.register_at_fork(after_in_child=_new_pool)
