"""Execute one job inside a worker: compile, run, stream output, report the outcome.

Runs in the single-use worker process only. Limits that a script could dodge by
catching an exception (output, calls, wall time) are enforced by the host, which
reads this process's frames and can kill it; here they only make errors friendlier.
"""

from __future__ import annotations

import socket
from types import CodeType, TracebackType
from typing import Any

from sandbox import plain, policy, protocol, script_globals, source_check
from sandbox.compiler import FILENAME, compile_script
from sandbox.journal import REPLAY_DIVERGED, JournalFull, ReplayDiverged, ValueLog
from sandbox.limits import (
    MAX_ERROR_CHARS,
    Limits,
    ScriptError,
    TraceFrame,
    fit_trace,
    printed_too_much,
    ran_out_of_memory,
    reason_from_data,
    result_too_large,
)
from sandbox.script_api import Info, IntegrationError, Integrations, error_code
from sandbox.script_store import Store
from sandbox.script_values import module_overrides


def _valid_text(text: str) -> str:
    """text with lone surrogates replaced by U+FFFD: frames are UTF-8, which cannot hold them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


class OutputLimitExceeded(Exception):
    """The script printed more than its output limit; the run ends `output_limit`."""


class OutputStream:
    """Collects everything a script prints and sends it to the host line by line."""

    def __init__(self, channel: socket.socket, limit: int = Limits.output_bytes) -> None:
        self._channel = channel
        self._partial: list[str] = []
        self._all: list[str] = []
        self._room = limit
        self.limit = limit
        self.exceeded = False

    def write(self, text: str) -> None:
        """Append text, sending each completed line at once; refuse text past the limit."""
        if not isinstance(text, str):
            raise TypeError("print() output must be text")
        if self.exceeded or not self._fits(text):
            # Counted here, before any copy, so a 100 MB print costs the limit, not 100 MB;
            # the host still counts too, and kills a worker that sends more.
            self.exceeded = True
            raise OutputLimitExceeded(printed_too_much(self.limit))
        text = _valid_text(str.__str__(text))  # an exact copy of a script's str subclass
        self._all.append(text)
        if "\n" not in text:
            self._partial.append(text)
            return
        head, _, tail = text.rpartition("\n")
        self._partial.append(head + "\n")
        protocol.send(self._channel, {"t": "out", "data": "".join(self._partial)})
        self._partial = [tail] if tail else []

    def _fits(self, text: str) -> bool:
        # A character is at least one UTF-8 byte: longer text cannot fit, shorter is measured.
        # Built-in str methods throughout: a script's str subclass may lie in its own.
        if str.__len__(text) > self._room:
            return False
        size = len(str.encode(text, "utf-8", "surrogatepass"))
        if size > self._room:
            return False
        self._room -= size
        return True

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
        # flush=True sends a partial line at once ("working... 3 of 10" shows while it
        # works); without it a line goes when it ends, as on a terminal.
        flush = kwargs.pop("flush", False)
        print(*objects, file=self._stream, **kwargs)
        if flush:
            self._stream.flush()


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


def _script_trace(tb: TracebackType | None) -> tuple[TraceFrame, ...]:
    # Only the script's own frames: the sandbox's frames would show host paths and code.
    frames = []
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename == FILENAME:
            name = "<script>" if code.co_name == "<module>" else code.co_name
            frames.append(TraceFrame(tb.tb_lineno, name))
        tb = tb.tb_next
    return fit_trace(frames)


def _capped(text: str) -> str:
    """text cut to MAX_ERROR_CHARS, ending in an ellipsis when cut, and valid UTF-8."""
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1] + "…"
    return _valid_text(text)


def _text(exc: BaseException) -> str:
    """str(exc), capped; never raises (the script chose the exception)."""
    try:
        return _capped(str(exc))
    except Exception:
        return "<the exception's message could not be read>"


def describe_exception(exc: BaseException, limits: Limits) -> ScriptError:
    """Turn an uncaught script exception into data: code, message, script line and frames."""
    line = _script_line(exc.__traceback__)
    trace = _script_trace(exc.__traceback__)
    if isinstance(exc, ReplayDiverged | JournalFull):
        return ScriptError(exc.code, _text(exc), line, trace)
    if isinstance(exc, IntegrationError):
        code = error_code(exc)
        return ScriptError(code, _text(exc) or code, line, trace, reason_from_data(exc.reason))
    if isinstance(exc, policy.Forbidden):
        return ScriptError("forbidden", _text(exc), line, trace)
    if isinstance(exc, MemoryError):
        return ScriptError("memory_limit", ran_out_of_memory(limits.memory_mb), line, trace)
    if isinstance(exc, OutputLimitExceeded):
        return ScriptError("output_limit", _text(exc), line, trace)
    # Built from the class name and a capped message rather than the traceback module:
    # a 100 MB message would be copied twice there, and the class name is the script's.
    name = type(exc).__name__
    text = _text(exc)
    return ScriptError(
        "script_error", _capped(f"{name}: {text}" if text else name), line, trace
    )


def _globals(
    job: dict[str, Any], output: OutputStream, channel: Channel, values: ValueLog
) -> dict[str, Any]:
    owned = policy.OwnedClasses()
    modules = policy.Modules(module_overrides(values))
    builtins = script_globals.build_builtins(modules, owned)
    glb = script_globals.build_globals(
        builtins=builtins, owned=owned, print_factory=output.collector)
    glb.update(
        integrations=Integrations(channel.call),
        store=Store(channel.call),
        input=job.get("input"),
        user=Info(job.get("user")),
        facility=Info(job.get("facility")),
    )
    return glb


def _failed(error: ScriptError) -> dict[str, Any]:
    return {"t": "done", "status": "failed", "error": error.to_dict(with_trace=True)}


def execute(job: dict[str, Any], sock: socket.socket) -> dict[str, Any]:
    """Run the job's source and return the `done` message with its journal fields."""
    replay = job.get("replay")
    values = ValueLog(replay if isinstance(replay, list) else [])
    done = _execute(job, sock, values)
    if values.diverged is not None and done.get("error", {}).get("code") != REPLAY_DIVERGED:
        # The script caught ReplayDiverged and went on: the run has diverged all the same.
        error = ScriptError(REPLAY_DIVERGED, values.diverged)
        done = {"t": "done", "status": "failed", "error": error.to_dict(with_trace=True)}
    done.update(values.frame_fields())
    return done


def _execute(job: dict[str, Any], sock: socket.socket, values: ValueLog) -> dict[str, Any]:
    """Run the job's source and return the `done` message (never raises)."""
    limits = _job_limits(job)
    output = OutputStream(sock, limits.output_bytes)
    code = compile_script(str(job.get("source", "")))
    if isinstance(code, ScriptError):
        return _failed(code)
    glb = _globals(job, output, Channel(sock, output, values), values)
    error: ScriptError | None = None
    try:
        _run(code, glb)
    except BaseException as exc:
        error = describe_exception(exc, limits)
    if output.exceeded:  # caught by the script or not, printing too much ends the run
        message = printed_too_much(output.limit)
        error = ScriptError("output_limit", message, error.line if error else None)
    output.flush()
    if error is not None:
        return _failed(error)
    return _result_message(glb.get("result"), limits)


def _job_limits(job: dict[str, Any]) -> Limits:
    raw = job.get("limits")
    return Limits(**raw) if isinstance(raw, dict) else Limits()


def _result_message(result: Any, limits: Limits) -> dict[str, Any]:
    # Copied and measured by plain.dumps: a huge `result` ends output_limit at the cap
    # instead of exhausting the worker's memory while it is encoded.
    try:
        result_json = plain.dumps(result, max_bytes=limits.result_bytes)
    except plain.TooLarge:
        error = ScriptError("output_limit", result_too_large(limits.result_bytes))
    except (TypeError, ValueError, RecursionError) as exc:
        error = ScriptError(
            "script_error",
            f"`result` is not JSON-serializable: {exc}; make it of dicts, lists, strings, "
            "numbers, booleans and None (a set as a list, bytes as text)",
        )
    except MemoryError:
        message = ran_out_of_memory(limits.memory_mb, doing=" encoding `result`")
        error = ScriptError("memory_limit", message)
    else:
        return {"t": "done", "status": "succeeded", "result_json": result_json}
    return _failed(error)


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
    """Worker main: wait for one job (a run, or a check of a source), do it, report, exit."""
    job = protocol.recv_blocking(sock)
    if job is None or job.get("t") not in ("job", "check"):
        return
    from sandbox import isolation

    isolation.apply_job_limits(job.get("limits") or {})
    if job["t"] == "check":  # compile only, for the host (sandbox.source_check)
        protocol.send(sock, source_check.check_here(str(job.get("source", ""))))
        return
    try:
        done = execute(job, sock)
    except MemoryError:  # e.g. while flushing output: the run still ends with its code
        memory_mb = _job_limits(job).memory_mb
        done = _failed(ScriptError("memory_limit", ran_out_of_memory(memory_mb)))
    done["isolation"] = isolation.enforced()  # informational: what this kernel enforced
    protocol.send(sock, done)
