"""Execute one job inside a worker: compile, run, stream output, report the outcome.

Runs in the single-use worker process only. Limits that a script could dodge by
catching an exception (output, calls, wall time) are enforced by the host, which
reads this process's frames and can kill it; here they only make errors friendlier.
"""

from __future__ import annotations

import json
import socket
import traceback
from types import CodeType, TracebackType
from typing import Any

from sandbox import policy, protocol
from sandbox.compiler import FILENAME, compile_script
from sandbox.journal import REPLAY_DIVERGED, JournalFull, ReplayDiverged, ValueLog
from sandbox.limits import ScriptError
from sandbox.script_api import Info, IntegrationError, Integrations
from sandbox.script_values import module_overrides


class OutputStream:
    """Collects everything a script prints and sends it to the host line by line."""

    def __init__(self, channel: socket.socket) -> None:
        self._channel = channel
        self._partial: list[str] = []
        self._all: list[str] = []

    def write(self, text: str) -> None:
        """Append text, sending each completed line at once."""
        if not isinstance(text, str):
            raise TypeError("print() output must be text")
        self._all.append(text)
        if "\n" not in text:
            self._partial.append(text)
            return
        head, _, tail = text.rpartition("\n")
        self._partial.append(head + "\n")
        protocol.send(self._channel, {"t": "out", "data": "".join(self._partial)})
        self._partial = [tail] if tail else []

    def flush(self) -> None:
        """Send a pending partial line."""
        if self._partial:
            protocol.send(self._channel, {"t": "out", "data": "".join(self._partial)})
            self._partial = []

    def text(self) -> str:
        """Everything printed so far (what RestrictedPython's `printed` returns)."""
        return "".join(self._all)

    def collector(self, _getattr_: Any = None) -> _Printer:
        """The `_print_` hook: every function scope writes to this one stream."""
        return _Printer(self)


class _Printer:
    def __init__(self, stream: OutputStream) -> None:
        self._stream = stream

    def __call__(self) -> str:
        return self._stream.text()

    def _call_print(self, *objects: Any, **kwargs: Any) -> None:
        if kwargs.pop("file", None) is not None:
            raise policy.Forbidden("print(file=...) is not allowed in scripts")
        kwargs.pop("flush", None)
        print(*objects, file=self._stream, **kwargs)


class Channel:
    """The worker's end of the host channel, used by `integrations` calls."""

    def __init__(self, sock: socket.socket, output: OutputStream, values: ValueLog) -> None:
        self._sock = sock
        self._output = output
        self._values = values

    def call(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Send a call, with the values read since the last one, and block for the answer."""
        if self._values.diverged is not None:  # caught once, it still ends the run here
            raise ReplayDiverged(self._values.diverged)
        self._output.flush()
        message = {"t": "call", "op": op, "args": args, **self._values.frame_fields()}
        protocol.send(self._sock, message)
        reply = protocol.recv_blocking(self._sock)
        if reply is None or reply.get("t") != "reply":
            raise SystemExit(0)  # the host is gone or ended the run; nothing left to do
        return reply


def _script_line(tb: TracebackType | None) -> int | None:
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def describe_exception(exc: BaseException) -> ScriptError:
    """Turn an uncaught script exception into data: code, message, script line."""
    line = _script_line(exc.__traceback__)
    if isinstance(exc, ReplayDiverged | JournalFull):
        return ScriptError(exc.code, str(exc), line)
    if isinstance(exc, IntegrationError):
        return ScriptError(exc.code, str(exc) or exc.code, line)
    if isinstance(exc, policy.Forbidden):
        return ScriptError("forbidden", str(exc), line)
    if isinstance(exc, MemoryError):
        return ScriptError("memory_limit", "the script ran out of memory", line)
    name = type(exc).__name__
    text = traceback.format_exception_only(type(exc), exc)[-1].strip()
    message = text if text.startswith(name) else f"{name}: {exc}"
    return ScriptError("script_error", message, line)


def _globals(
    job: dict[str, Any], output: OutputStream, channel: Channel, values: ValueLog
) -> dict[str, Any]:
    owned = policy.OwnedClasses()
    modules = policy.Modules(module_overrides(values))
    builtins = policy.build_builtins(modules, owned)
    glb = policy.build_globals(builtins=builtins, owned=owned, print_factory=output.collector)
    glb.update(
        integrations=Integrations(channel.call),
        input=job.get("input"),
        user=Info(job.get("user")),
        facility=Info(job.get("facility")),
    )
    return glb


def execute(job: dict[str, Any], sock: socket.socket) -> dict[str, Any]:
    """Run the job's source and return the `done` message with its journal fields."""
    replay = job.get("replay")
    values = ValueLog(replay if isinstance(replay, list) else [])
    done = _execute(job, sock, values)
    if values.diverged is not None and done.get("error", {}).get("code") != REPLAY_DIVERGED:
        # The script caught ReplayDiverged and went on: the run has diverged all the same.
        error = ScriptError(REPLAY_DIVERGED, values.diverged)
        done = {"t": "done", "status": "failed", "error": error.to_dict()}
    done.update(values.frame_fields())
    return done


def _execute(job: dict[str, Any], sock: socket.socket, values: ValueLog) -> dict[str, Any]:
    """Run the job's source and return the `done` message (never raises)."""
    output = OutputStream(sock)
    code = compile_script(str(job.get("source", "")))
    if isinstance(code, ScriptError):
        return {"t": "done", "status": "failed", "error": code.to_dict()}
    glb = _globals(job, output, Channel(sock, output, values), values)
    try:
        _run(code, glb)
    except BaseException as exc:
        error = describe_exception(exc)
        output.flush()
        return {"t": "done", "status": "failed", "error": error.to_dict()}
    output.flush()
    try:
        result_json = json.dumps(glb.get("result"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        error = ScriptError("script_error", f"`result` is not JSON-serializable: {exc}")
        return {"t": "done", "status": "failed", "error": error.to_dict()}
    return {"t": "done", "status": "succeeded", "result_json": result_json}


def _run(code: CodeType, glb: dict[str, Any]) -> None:
    exec(code, glb)  # noqa: S102 - restricted code object from compile_script


_WARM_UP = "import json\nx = [i * 2 for i in range(3)]\nresult = json.loads(json.dumps({'x': x}))\n"


def warm_up(sock: socket.socket) -> None:
    """Run a throwaway script so the pages a run touches are copied before a job arrives.

    A forked worker shares the zygote's memory copy-on-write; the first run in it pays
    for every page it touches. Paying that while idle keeps it off the run's latency.
    """
    execute({"source": _WARM_UP}, sock)


def serve_one_job(sock: socket.socket) -> None:
    """Worker main: wait for one job, run it, report, exit."""
    job = protocol.recv_blocking(sock)
    if job is None or job.get("t") != "job":
        return
    from sandbox import isolation

    isolation.apply_job_limits(job.get("limits") or {})
    done = execute(job, sock)
    done["isolation"] = isolation.enforced()  # informational: what this kernel enforced
    protocol.send(sock, done)
