"""The host side: a zygote process, pre-forked idle workers, and `Executor.run`.

`Executor.run` is thread-safe and blocking: it takes an idle worker (never waiting for
a fork when the pool keeps up) and hands the job to a Conversation
(sandbox.conversation), which relays output and integration calls, enforces the limits
and replays a journal. Workers are single-use; a background thread keeps the idle pool
full.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sandbox.conversation import (
    CallHandler,
    Conversation,
    HostCall,
    HostCallError,
    OutputHandler,
    RunClock,
    refuse_all_calls,
)
from sandbox.journal import Journal
from sandbox.limits import Limits, RunResult
from sandbox.replay import Replay
from sandbox.source_check import SourceCheck, converse
from sandbox.workers import Exits, Worker

# Re-exported: the package's lazy loader finds the host-side names here.
__all__ = [
    "CallHandler",
    "Executor",
    "HostCall",
    "HostCallError",
    "OutputHandler",
    "RunClock",
    "SandboxUnavailable",
    "refuse_all_calls",
]

_ROOT = str(Path(__file__).resolve().parent.parent)
_BOOT = "import sys; sys.path.insert(0, {root!r}); from sandbox.zygote import main; main({fd})"


class SandboxUnavailable(RuntimeError):
    """The executor is closed or its zygote died."""


class Executor:
    """Runs scripts in single-use, hardened worker processes forked from a clean zygote."""

    def __init__(
        self, *, idle_workers: int = 4, python: str = sys.executable, hash_seed: int | None = None
    ) -> None:
        if idle_workers < 1:
            raise ValueError("idle_workers must be at least 1")
        if hash_seed is not None and not 0 <= hash_seed <= 4294967295:
            raise ValueError("hash_seed must be between 0 and 4294967295")
        self.idle_target = idle_workers
        self._python = python
        self.hash_seed = hash_seed
        self._idle: collections.deque[Worker] = collections.deque()
        self._cond = threading.Condition()
        self._requested = 0
        self._waiting = 0
        self._exits = Exits()
        self._closed = False  # no more runs: closed, or the zygote is gone
        self._released = False  # close() gave back the zygote, workers and sockets
        self._zygote: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._owner: int | None = None  # the process that started it

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> Executor:
        """Start the zygote and fill the idle pool; returns self."""
        host_end, zygote_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        boot = _BOOT.format(root=_ROOT, fd=zygote_end.fileno())
        # -I ignores every PYTHON* variable, PYTHONHASHSEED too; with a fixed seed (so set
        # and dict order replays) the environment holds that one variable, and -s -P keep
        # the rest of isolated mode: no user site-packages, no script directory on the path.
        flags, env = ["-I"], {}
        if self.hash_seed is not None:
            flags, env = ["-s", "-P"], {"PYTHONHASHSEED": str(self.hash_seed)}
        self._zygote = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
            [self._python, *flags, "-c", boot],
            env=env,  # a fresh interpreter, nothing inherited: no secrets
            pass_fds=[zygote_end.fileno()],
            close_fds=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            cwd="/",
            # Its own session: a signal to the host's whole group (a terminal's Ctrl-C,
            # honcho and systemd stopping the host) must not kill it under runs in
            # flight. The host stops it; it exits by itself once the host is gone.
            start_new_session=True,
        )
        zygote_end.close()
        self._owner = os.getpid()
        self._control = host_end
        self._reader = threading.Thread(
            target=self._read_control, name="sandbox-zygote", daemon=True
        )
        self._reader.start()
        with self._cond:
            self._replenish_locked()
        return self

    def close(self) -> None:
        """Stop the zygote and every idle worker; in a process forked from the one that
        started them, only let go of this process's copies of their descriptors."""
        with self._cond:
            if self._released:
                return
            self._released = self._closed = True
            idle = list(self._idle)
            self._idle.clear()
            self._cond.notify_all()
        if self._owner is not None and self._owner != os.getpid():
            # Inherited over a fork (its atexit hook runs here too): the zygote and workers
            # are the parent's, still serving it. Killing them or shutting the control
            # socket down would end the parent's sandbox; a copy of the socket kept open
            # would keep a zygote alive after its parent is gone.
            for worker in idle:
                worker.close()
            if self._control is not None:
                self._control.close()
            return
        for worker in idle:
            worker.kill()
            worker.close()
        if self._control is not None:
            with contextlib.suppress(OSError):
                self._control.shutdown(socket.SHUT_RDWR)
        if self._zygote is not None:
            try:
                self._zygote.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._zygote.kill()
                self._zygote.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self._control is not None:
            self._control.close()

    def __enter__(self) -> Executor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def idle_pids(self) -> list[int]:
        """Pids of the idle pre-forked workers (for measurements)."""
        with self._cond:
            return [worker.pid for worker in self._idle]

    @property
    def running(self) -> bool:
        """True from start() until close() or the zygote's end (after which no worker is
        forked: runs fail once the idle ones are used up)."""
        with self._cond:
            return self._zygote is not None and not self._closed

    @property
    def zygote_pid(self) -> int | None:
        """The zygote's pid, once started."""
        return self._zygote.pid if self._zygote else None

    # -- pool ------------------------------------------------------------------------

    def _replenish_locked(self) -> None:
        want = self.idle_target + self._waiting - len(self._idle) - self._requested
        if want > 0 and self._control is not None and not self._closed:
            self._requested += want
            # Warm workers (see runtime.warm_up) answer faster but cost CPU to prepare;
            # when callers already wait, a worker is needed now, so skip the warm-up.
            warm = self._waiting == 0
            try:
                self._control.send(json.dumps({"t": "fork", "n": want, "warm": warm}).encode())
            except OSError:
                # The zygote is gone (its reader marks the executor closed): a run that
                # just ended keeps its outcome, and the next one gets SandboxUnavailable.
                self._requested -= want

    def _read_control(self) -> None:
        assert self._control is not None
        while True:
            try:
                data, fds, _flags, _addr = socket.recv_fds(self._control, 4096, 2)
            except OSError:
                data, fds = b"", []
            if not data:
                for fd in fds:
                    os.close(fd)
                with self._cond:
                    self._closed = True
                    self._cond.notify_all()
                return
            message = json.loads(data)
            if message.get("t") == "exit":
                self._exits.record(int(message["pid"]), message)
                continue
            channel = socket.socket(fileno=fds[0])
            worker = Worker(int(message["pid"]), channel, fds[1] if len(fds) > 1 else -1)
            with self._cond:
                self._requested = max(0, self._requested - 1)
                if self._closed:
                    worker.kill()
                    worker.close()
                    continue
                self._idle.append(worker)
                self._cond.notify()

    def _take_worker(self, timeout: float) -> Worker:
        deadline = time.monotonic() + timeout
        with self._cond:
            self._waiting += 1
            try:
                while not self._idle:
                    if self._closed:
                        raise SandboxUnavailable("the sandbox executor is not running")
                    self._replenish_locked()
                    if not self._cond.wait(timeout=max(0.0, deadline - time.monotonic())):
                        raise SandboxUnavailable("no sandbox worker became available in time")
                worker = self._idle.popleft()
            finally:
                self._waiting -= 1
            if not self._idle:
                self._replenish_locked()
            return worker

    def _release(self) -> None:
        # Forking after the run, not while it runs, keeps the zygote off the CPU the
        # run needs (two cores here); an empty pool still forks at once in _take_worker.
        with self._cond:
            self._replenish_locked()

    # -- running -----------------------------------------------------------------------

    def run(
        self,
        source: str,
        *,
        input: Any = None,
        limits: Limits | None = None,
        user: dict[str, Any] | None = None,
        facility: dict[str, Any] | None = None,
        on_call: CallHandler | None = None,
        on_output: OutputHandler | None = None,
        cancel: threading.Event | None = None,
        journal: Journal | None = None,
    ) -> RunResult:
        """Run one script to completion in a fresh worker and return its outcome.

        With a journal the run resumes: the script runs from the top, journalled calls and
        values are answered from the journal (on_call is not called for them), output up
        to the journalled length is not passed to on_output again, then it goes on live.
        When on_call raises ParkRun the worker is killed and the result is PARKED, its
        journal ready to resume from. RunResult.output is the whole run's output.
        """
        limits = limits or Limits()
        worker = self._take_worker(timeout=max(10.0, limits.wall_time_s))
        job = {
            "t": "job",
            "source": source,
            "input": input,
            "limits": asdict(limits),
            "user": user,
            "facility": facility,
            "replay": journal.values if journal is not None else [],
        }
        try:
            conversation = Conversation(
                worker=worker,
                limits=limits,
                on_call=on_call or refuse_all_calls,
                on_output=on_output,
                cancel=cancel,
                exits=self._exits,
                replay=Replay(journal, max_bytes=limits.journal_bytes),
            )
            result = conversation.execute(job)
        finally:
            worker.close()
            self._release()
        return result

    def check(self, source: str, *, limits: Limits) -> SourceCheck:
        """Compile source in a fresh worker without running it, and name its literal
        integration calls; a check past `limits.wall_time_s` (or its CPU time) is killed
        and answered with a `check_timed_out` error."""
        worker = self._take_worker(timeout=max(10.0, limits.wall_time_s))
        try:
            return converse(worker, source, limits, self._exits)
        finally:
            worker.close()
            self._release()
