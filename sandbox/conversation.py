"""One run's conversation with its worker: output, host calls, limits and replay.

The host side of the protocol for a single job. The worker runs hostile code, so every
decision is made here: limits are enforced by killing the worker, and a resumed run's
calls are checked against its journal by the host (sandbox.replay), never by the worker.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from sandbox import protocol
from sandbox.journal import REPLAY_DIVERGED, VALUES_FRAME_BYTES, CallIdentity, ParkRun
from sandbox.limits import (
    CANCELLED,
    FAILED,
    MAX_CALL_BYTES,
    MAX_ERROR_CHARS,
    PARKED,
    SUCCEEDED,
    TIMED_OUT,
    Limits,
    RunResult,
    ScriptError,
    TraceFrame,
    clamp_line,
    line_count,
    made_too_many_calls,
    printed_too_much,
    ran_too_long,
    reason_from_data,
    result_too_large,
    trace_from_data,
    used_too_much_cpu,
)
from sandbox.replay import Diverged, Replay, ValuesOverflow
from sandbox.store_ops import NO_STORE, STORE_OPS
from sandbox.workers import Exits, Worker

_POLL_S = 0.05


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
    """Default handler: no integrations exist yet, and no store."""
    service = call.args.get("service", "")
    if call.op == "available":
        return []
    if call.op in STORE_OPS:
        raise HostCallError("invalid_request", NO_STORE)
    raise HostCallError("unknown_integration", f"no integration named '{service}' is configured")


class Conversation:
    """One job's conversation with its worker: relay output and calls, enforce limits."""

    def __init__(
        self,
        *,
        worker: Worker,
        limits: Limits,
        on_call: CallHandler,
        on_output: OutputHandler | None,
        cancel: threading.Event | None,
        exits: Exits,
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
        self.requests = 0  # of them, requests to a service (RunResult.requests)
        self.lines = 1  # the job's source's line count, once sent
        max_frame = max(limits.output_bytes, limits.result_bytes, MAX_CALL_BYTES) + 64 * 1024
        max_frame += VALUES_FRAME_BYTES  # a call or done frame also carries journal values
        self.reader = protocol.FrameReader(worker.channel, max_frame=max_frame)

    def _end(self, status: str, code: str | None = None, message: str = "", line: int | None = None,
             result: Any = None, trace: tuple[TraceFrame, ...] = (),
             reason: str | None = None) -> RunResult:
        error = ScriptError(code, message, line, trace, reason) if code else None
        used_s = self.clock.used()
        journal = self.replay.finish(wall_s=used_s)
        # Its duration is the run's own time, as its time limit counts it: a wait for a
        # person to sign in is not in it, a part run before a park is, once.
        return RunResult(
            status, result, "".join(self.output), error, duration_ms=used_s * 1000,
            calls=self.calls, requests=self.requests, journal=journal,
        )

    def _kill(self, status: str, code: str, message: str) -> RunResult:
        self.worker.kill()
        return self._end(status, code, message)

    def execute(self, job: dict[str, Any]) -> RunResult:
        """Send the job and serve the worker until the run ends; never raises for the script."""
        # The worker's line numbers are bounded by the source's lines (it is untrusted).
        self.lines = line_count(str(job.get("source", "")))
        try:
            protocol.send(self.worker.channel, job)
        except OSError:
            return self._crashed()
        while True:
            if self.cancel is not None and self.cancel.is_set():
                return self._kill(CANCELLED, "cancelled", "the run was cancelled")
            remaining = self.clock.remaining()
            if remaining <= 0:
                return self._kill(TIMED_OUT, "timeout", ran_too_long(self.limits.wall_time_s))
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
            return self._kill(FAILED, "output_limit", printed_too_much(self.limits.output_bytes))
        self.output.append(text)
        new = self.replay.new_output(text)
        if self.on_output is not None and new:
            self.on_output(new)
        return None

    def _on_call(self, message: dict[str, Any]) -> RunResult | None:
        self.calls += 1
        if self.calls > self.limits.max_calls:
            return self._kill(FAILED, "call_limit", made_too_many_calls(self.limits.max_calls))
        raw_args = message.get("args")
        op, args = str(message.get("op")), raw_args if isinstance(raw_args, dict) else {}
        if op == "request":
            self.requests += 1
        identity, seen = CallIdentity.of(op, args), message.get("seen")
        try:
            reply = self.replay.journalled_reply(self.calls - 1, identity, seen)
            self.replay.take_values(message)
        except Diverged as exc:
            return self._kill(FAILED, REPLAY_DIVERGED, str(exc))
        except ValuesOverflow as exc:
            return self._kill(FAILED, "call_limit", str(exc))
        except protocol.ProtocolError as exc:
            return self._kill(FAILED, "script_error", f"the worker broke protocol: {exc}")
        live = reply is None
        if live:
            self.clock.go_live()
            try:
                value = self.on_call(HostCall(op, args, self.clock, self.calls))
                reply = {"ok": True, "value": value}
            except HostCallError as exc:
                reply = {"ok": False, "error": exc.to_dict()}
            except ParkRun:
                if op == "request":  # asked again, live, on resume
                    self.requests -= 1
                return self._park()
        frame = protocol.encode({"t": "reply", **reply})
        if live:
            self.replay.record(identity, reply, seen, size=len(frame))
        try:
            self.worker.channel.sendall(frame)
        except OSError:
            return self._crashed()
        return None

    def _park(self) -> RunResult:
        self.calls -= 1  # the parking call is asked again, live, on resume
        if self.replay.overflowed:
            limit = self.limits.journal_bytes
            return self._kill(
                FAILED,
                "memory_limit",
                f"the run received more than {limit} bytes from integrations, too much to "
                "keep while it waits; it cannot pause, so it ends here",
            )
        parked = self._end(PARKED)  # the time used stops here, not after the kill
        self.worker.kill()
        # The zygote reports the worker once it has reaped it: then it is really gone.
        self.exits.wait(self.worker.pid, timeout=5.0)
        return parked

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
        except protocol.ProtocolError as exc:
            return self._end(FAILED, "script_error", f"the worker broke protocol: {exc}")
        outcome = self._done_result(message)
        isolation = message.get("isolation")
        if isinstance(isolation, dict):
            outcome.extra["isolation"] = isolation
        return outcome

    def _done_result(self, message: dict[str, Any]) -> RunResult:
        if message.get("status") != SUCCEEDED:
            raw = message.get("error")
            error: dict[str, Any] = raw if isinstance(raw, dict) else {}
            trace = tuple(
                replace(frame, line=clamp_line(frame.line, self.lines) or 1)
                for frame in trace_from_data(error.get("trace"))
            )
            return self._end(
                FAILED,
                str(error.get("code") or "script_error"),
                str(error.get("message") or "the script failed")[:MAX_ERROR_CHARS],
                clamp_line(error.get("line"), self.lines),
                trace=trace,
                reason=reason_from_data(error.get("reason")),
            )
        result_json = str(message.get("result_json", "null"))
        if len(result_json.encode()) > self.limits.result_bytes:
            return self._end(FAILED, "output_limit", result_too_large(self.limits.result_bytes))
        return self._end(SUCCEEDED, result=json.loads(result_json))

    def _crashed(self) -> RunResult:
        status = self.exits.wait(self.worker.pid, timeout=2.0) or {}
        signum = int(status.get("signal", 0))
        if signum in (signal.SIGXCPU, signal.SIGKILL):
            return self._end(FAILED, "cpu_limit", used_too_much_cpu(self.limits.cpu_time_s))
        if signum:
            name = signal.Signals(signum).name
            return self._end(FAILED, "script_error", f"the worker process died ({name})")
        return self._end(FAILED, "script_error", "the worker process exited unexpectedly")
