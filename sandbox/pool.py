"""The host side: a zygote process, pre-forked idle workers, and `Executor.run`.

`Executor.run` is thread-safe and blocking: it takes an idle worker (never waiting for
a fork when the pool keeps up), sends the job, relays output and integration calls,
enforces wall time, output, result and call limits, and kills the worker when a limit
is crossed. Workers are single-use; a background thread keeps the idle pool full.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sandbox import protocol
from sandbox.journal import REPLAY_DIVERGED, CallIdentity, Journal, ParkRun
from sandbox.limits import (
    CANCELLED,
    FAILED,
    PARKED,
    SUCCEEDED,
    TIMED_OUT,
    Limits,
    RunResult,
    ScriptError,
)
from sandbox.replay import Diverged, Replay, ValuesOverflow

_ROOT = str(Path(__file__).resolve().parent.parent)
_BOOT = "import sys; sys.path.insert(0, {root!r}); from sandbox.zygote import main; main({fd})"
_POLL_S = 0.05


class SandboxUnavailable(RuntimeError):
    """The executor is closed or its zygote died."""


class HostCallError(Exception):
    """Raised by a host call handler: the script receives the matching IntegrationError."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The error as sent to the worker."""
        return {"code": self.code, "message": self.message, **self.details}


class RunClock:
    """The run's wall clock: it stops while the host waits for a person.

    A resumed run has used `used_s` already. Replaying that part again is free up to
    `used_s` (a replay is faster than the first run: calls and sleeps are not repeated);
    from `go_live()` on, the run has what is left of its limit.
    """

    def __init__(self, limit_s: float, *, used_s: float = 0.0) -> None:
        self._limit = limit_s
        self._used = used_s
        self._deadline = time.monotonic() + limit_s
        self._paused_since: float | None = None
        self._lock = threading.Lock()

    def go_live(self) -> None:
        """The replay is over: from now on the run has its limit minus the time already used."""
        with self._lock:
            if self._used > 0 and self._paused_since is None:
                self._deadline = min(self._deadline, time.monotonic() + self._limit - self._used)
            self._used = 0.0

    def used(self) -> float:
        """Wall seconds the run has used, the part before a park included."""
        return max(self._limit - self.remaining(), self._used)

    def remaining(self) -> float:
        """Seconds of wall time the run has left."""
        with self._lock:
            now = self._paused_since if self._paused_since is not None else time.monotonic()
            return self._deadline - now

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the clock for the duration of the block."""
        with self._lock:
            self._paused_since = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                if self._paused_since is not None:
                    self._deadline += time.monotonic() - self._paused_since
                self._paused_since = None


@dataclass
class HostCall:
    """One `integrations.*` call from a script, handed to the caller's handler."""

    op: str
    args: dict[str, Any]
    clock: RunClock
    index: int


CallHandler = Callable[[HostCall], Any]
OutputHandler = Callable[[str], None]


def refuse_all_calls(call: HostCall) -> Any:
    """Default handler: no integrations exist yet."""
    service = call.args.get("service", "")
    if call.op == "available":
        return []
    raise HostCallError("unknown_integration", f"no integration named '{service}' is configured")


@dataclass
class _Worker:
    pid: int
    channel: socket.socket
    pidfd: int

    def kill(self) -> None:
        try:
            if self.pidfd >= 0:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)
        except (ProcessLookupError, OSError):
            pass

    def close(self) -> None:
        self.channel.close()
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


@dataclass
class _Exits:
    """Abnormal worker exits reported by the zygote, kept for a short while."""

    statuses: collections.OrderedDict[int, dict[str, int]] = field(
        default_factory=collections.OrderedDict
    )
    cond: threading.Condition = field(default_factory=threading.Condition)

    def record(self, pid: int, status: dict[str, int]) -> None:
        with self.cond:
            self.statuses[pid] = status
            while len(self.statuses) > 4096:
                self.statuses.popitem(last=False)
            self.cond.notify_all()

    def wait(self, pid: int, timeout: float) -> dict[str, int] | None:
        with self.cond:
            self.cond.wait_for(lambda: pid in self.statuses, timeout)
            return self.statuses.pop(pid, None)


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
        self._idle: collections.deque[_Worker] = collections.deque()
        self._cond = threading.Condition()
        self._requested = 0
        self._waiting = 0
        self._exits = _Exits()
        self._closed = False
        self._zygote: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._reader: threading.Thread | None = None

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
        )
        zygote_end.close()
        self._control = host_end
        self._reader = threading.Thread(
            target=self._read_control, name="sandbox-zygote", daemon=True
        )
        self._reader.start()
        with self._cond:
            self._replenish_locked()
        return self

    def close(self) -> None:
        """Stop the zygote and every idle worker."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            idle = list(self._idle)
            self._idle.clear()
            self._cond.notify_all()
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
            self._control.send(json.dumps({"t": "fork", "n": want, "warm": warm}).encode())

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
            worker = _Worker(int(message["pid"]), channel, fds[1] if len(fds) > 1 else -1)
            with self._cond:
                self._requested = max(0, self._requested - 1)
                if self._closed:
                    worker.kill()
                    worker.close()
                    continue
                self._idle.append(worker)
                self._cond.notify()

    def _take_worker(self, timeout: float) -> _Worker:
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
        started = time.perf_counter()
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
            run = _Run(worker, limits, on_call or refuse_all_calls, on_output, cancel, self._exits,
                       Replay(journal))
            result = run.execute(job)
        finally:
            worker.close()
            self._release()
        result.duration_ms = (time.perf_counter() - started) * 1000
        return result


class _Run:
    """One job's conversation with its worker."""

    def __init__(
        self,
        worker: _Worker,
        limits: Limits,
        on_call: CallHandler,
        on_output: OutputHandler | None,
        cancel: threading.Event | None,
        exits: _Exits,
        replay: Replay,
    ) -> None:
        self.worker = worker
        self.limits = limits
        self.on_call = on_call
        self.on_output = on_output
        self.cancel = cancel
        self.exits = exits
        self.replay = replay
        self.clock = RunClock(limits.wall_time_s, used_s=replay.journal.wall_s)
        self.output: list[str] = []
        self.output_size = 0
        self.calls = 0
        max_frame = max(limits.output_bytes, limits.result_bytes, 1 << 20) + 64 * 1024
        self.reader = protocol.FrameReader(worker.channel, max_frame=max_frame)

    def _end(self, status: str, code: str | None = None, message: str = "", line: int | None = None,
             result: Any = None) -> RunResult:
        error = ScriptError(code, message, line) if code else None
        journal = self.replay.finish(wall_s=self.clock.used())
        return RunResult(
            status, result, "".join(self.output), error, calls=self.calls, journal=journal
        )

    def _kill(self, status: str, code: str, message: str) -> RunResult:
        self.worker.kill()
        return self._end(status, code, message)

    def execute(self, job: dict[str, Any]) -> RunResult:
        try:
            protocol.send(self.worker.channel, job)
        except OSError:
            return self._crashed()
        while True:
            if self.cancel is not None and self.cancel.is_set():
                return self._kill(CANCELLED, "cancelled", "the run was cancelled")
            remaining = self.clock.remaining()
            if remaining <= 0:
                limit = self.limits.wall_time_s
                return self._kill(TIMED_OUT, "timeout", f"the script ran longer than {limit:g} s")
            try:
                message = self.reader.read(min(remaining, _POLL_S) if self.cancel else remaining)
            except TimeoutError:
                continue
            except protocol.FrameTooLarge:
                return self._kill(FAILED, "output_limit", "the script sent more data than allowed")
            except protocol.ProtocolError as exc:
                return self._kill(FAILED, "script_error", f"the worker broke protocol: {exc}")
            if message is None:
                return self._crashed()
            outcome = self._handle(message)
            if outcome is not None:
                return outcome

    def _handle(self, message: dict[str, Any]) -> RunResult | None:
        kind = message.get("t")
        if kind == "out":
            return self._on_output(str(message.get("data", "")))
        if kind == "call":
            return self._on_call(message)
        if kind == "done":
            return self._on_done(message)
        return self._kill(FAILED, "script_error", f"unexpected message from worker: {kind!r}")

    def _on_output(self, text: str) -> RunResult | None:
        self.output_size += len(text.encode("utf-8", "surrogatepass"))
        if self.output_size > self.limits.output_bytes:
            limit = self.limits.output_bytes
            return self._kill(FAILED, "output_limit", f"the script printed more than {limit} bytes")
        self.output.append(text)
        new = self.replay.new_output(text)
        if self.on_output is not None and new:
            self.on_output(new)
        return None

    def _on_call(self, message: dict[str, Any]) -> RunResult | None:
        self.calls += 1
        if self.calls > self.limits.max_calls:
            limit = self.limits.max_calls
            reason = f"the script made more than {limit} integration calls"
            return self._kill(FAILED, "call_limit", reason)
        raw_args = message.get("args")
        op, args = str(message.get("op")), raw_args if isinstance(raw_args, dict) else {}
        identity, seen = CallIdentity.of(op, args), message.get("seen")
        try:
            reply = self.replay.journalled_reply(self.calls - 1, identity, seen)
            self.replay.take_values(message)
        except Diverged as exc:
            return self._kill(FAILED, REPLAY_DIVERGED, str(exc))
        except ValuesOverflow as exc:
            return self._kill(FAILED, "call_limit", str(exc))
        if reply is None:
            self.clock.go_live()
            try:
                value = self.on_call(HostCall(op, args, self.clock, self.calls))
                reply = {"ok": True, "value": value}
            except HostCallError as exc:
                reply = {"ok": False, "error": exc.to_dict()}
            except ParkRun:
                return self._park()
            self.replay.record(identity, reply, seen)
        try:
            protocol.send(self.worker.channel, {"t": "reply", **reply})
        except OSError:
            return self._crashed()
        return None

    def _park(self) -> RunResult:
        self.calls -= 1  # the parking call is asked again, live, on resume
        self.worker.kill()
        # The zygote reports the worker once it has reaped it: then it is really gone.
        self.exits.wait(self.worker.pid, timeout=5.0)
        return self._end(PARKED)

    def _on_done(self, message: dict[str, Any]) -> RunResult:
        raw = message.get("error")
        error: dict[str, Any] = raw if isinstance(raw, dict) else {}
        try:
            self.replay.take_values(message)
            if error.get("code") != REPLAY_DIVERGED:  # else the worker's words say it better
                self.replay.check_done(self.calls, ended=str(error.get("message") or ""))
        except Diverged as exc:
            return self._end(FAILED, REPLAY_DIVERGED, str(exc))
        except ValuesOverflow as exc:
            return self._end(FAILED, "call_limit", str(exc))
        outcome = self._done_result(message)
        isolation = message.get("isolation")
        if isinstance(isolation, dict):
            outcome.extra["isolation"] = isolation
        return outcome

    def _done_result(self, message: dict[str, Any]) -> RunResult:
        if message.get("status") != SUCCEEDED:
            raw = message.get("error")
            error: dict[str, Any] = raw if isinstance(raw, dict) else {}
            line = error.get("line")
            return self._end(
                FAILED,
                str(error.get("code") or "script_error"),
                str(error.get("message") or "the script failed")[:4000],
                line if isinstance(line, int) else None,
            )
        result_json = str(message.get("result_json", "null"))
        if len(result_json.encode()) > self.limits.result_bytes:
            return self._end(
                FAILED, "output_limit", f"`result` is larger than {self.limits.result_bytes} bytes"
            )
        return self._end(SUCCEEDED, result=json.loads(result_json))

    def _crashed(self) -> RunResult:
        status = self.exits.wait(self.worker.pid, timeout=2.0) or {}
        signum = int(status.get("signal", 0))
        if signum in (signal.SIGXCPU, signal.SIGKILL):
            return self._end(
                FAILED, "cpu_limit", f"the script used more than {self.limits.cpu_time_s} s of CPU"
            )
        if signum:
            name = signal.Signals(signum).name
            return self._end(FAILED, "script_error", f"the worker process died ({name})")
        return self._end(FAILED, "script_error", "the worker process exited unexpectedly")
