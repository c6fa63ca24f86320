"""Check a source without running it: does it compile, which integration calls it names.

Checked in a single-use worker (`Executor.check`), never in the host: parsing is not
linear in the source (CPython 3.11 takes seconds for 256 KiB of f-string fields) and
holds the GIL all along, which every request and run of the host shares. The worker is
killed at the check's time limit. Its report is untrusted: `report_from_data` bounds
every field before the host keeps or shows it.
"""

from __future__ import annotations

import ast
import signal
import time
from dataclasses import asdict, dataclass
from typing import Any

from sandbox import protocol
from sandbox.compiler import compile_tree, parse_script
from sandbox.limits import (
    MAX_ERROR_CHARS,
    Limits,
    ScriptError,
    checked_too_long,
    clamp_line,
    line_count,
)
from sandbox.workers import Exits, Worker

# The error code of a check stopped at its time or CPU limit.
CHECK_TIMED_OUT = "check_timed_out"
# What a report may hold: the calls a source names (more are left out) and their words.
MAX_CALLS = 200
MAX_NAME_CHARS = 200
_MAX_REPORT_BYTES = MAX_CALLS * (2 * MAX_NAME_CHARS * 4 + 64) + MAX_ERROR_CHARS * 4 + 4096
_CALL_NAMES = frozenset({"request", "get", "post", "put", "patch", "delete", "require"})
_CODES = frozenset({"compile_error", "forbidden"})


@dataclass(frozen=True)
class Call:
    """An `integrations.<call>("key", …, account=…)` in a script's source.

    `account` is the literal given (None when left out); `dynamic` when it is computed.
    """

    key: str
    account: str | None = None
    dynamic: bool = False


@dataclass(frozen=True)
class SourceCheck:
    """What a check found: why the source does not compile (None when it does) and the
    literal integration calls it names, in order of appearance (none when it does not parse)."""

    error: ScriptError | None = None
    calls: tuple[Call, ...] = ()


def literal_calls(tree: ast.AST) -> list[Call]:
    """The distinct literal integration calls in a syntax tree, in order of appearance."""
    calls: list[Call] = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _CALL_NAMES
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "integrations"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            continue
        call = Call(node.args[0].value)
        for keyword in node.keywords:
            if keyword.arg != "account":
                continue
            value = keyword.value
            if isinstance(value, ast.Constant) and (
                value.value is None or isinstance(value.value, str)
            ):
                call = Call(call.key, value.value)
            else:
                call = Call(call.key, dynamic=True)
        if call not in calls:
            calls.append(call)
    return calls


def check_here(source: str) -> dict[str, Any]:
    """The worker's side: parse and compile source, and report as a `checked` message."""
    tree = parse_script(source)
    if isinstance(tree, ScriptError):
        return {"t": "checked", "error": tree.to_dict(), "calls": []}
    # Before compiling: RestrictedPython rewrites the tree in place.
    calls = [asdict(call) for call in literal_calls(tree)[:MAX_CALLS]]
    code = compile_tree(tree)
    error = code.to_dict() if isinstance(code, ScriptError) else None
    return {"t": "checked", "error": error, "calls": calls}


def _text(raw: Any, limit: int) -> str | None:
    return raw[:limit] if isinstance(raw, str) else None


def report_from_data(message: dict[str, Any], source: str) -> SourceCheck:
    """A worker's `checked` report, bounded: known codes, a capped message, a line within
    the source, at most MAX_CALLS calls with short names (the worker is untrusted)."""
    raw_error = message.get("error")
    error = None
    if isinstance(raw_error, dict):
        code = raw_error.get("code")
        error = ScriptError(
            code if code in _CODES else "compile_error",
            _text(raw_error.get("message"), MAX_ERROR_CHARS) or "the script does not compile",
            clamp_line(raw_error.get("line"), line_count(source)),
        )
    calls: list[Call] = []
    raw_calls = message.get("calls")
    for item in raw_calls[:MAX_CALLS] if isinstance(raw_calls, list) else ():
        if not isinstance(item, dict):
            continue
        key = _text(item.get("key"), MAX_NAME_CHARS)
        if key is None:
            continue
        account = _text(item.get("account"), MAX_NAME_CHARS)
        call = Call(key, account, item.get("dynamic") is True and account is None)
        if call not in calls:
            calls.append(call)
    return SourceCheck(error, tuple(calls))


def converse(worker: Worker, source: str, limits: Limits, exits: Exits) -> SourceCheck:
    """The host's side: send the check to the worker and read its report, killing the
    worker past `limits.wall_time_s` (its CPU rlimit is the job's `cpu_time_s`)."""
    deadline = time.monotonic() + limits.wall_time_s
    too_long = SourceCheck(ScriptError(CHECK_TIMED_OUT, checked_too_long(limits.wall_time_s)))
    try:
        protocol.send(worker.channel, {"t": "check", "source": source, "limits": asdict(limits)})
        message = protocol.FrameReader(worker.channel, _MAX_REPORT_BYTES).read(
            deadline - time.monotonic()
        )
    except TimeoutError:
        worker.kill()
        return too_long
    except protocol.ProtocolError as exc:
        worker.kill()
        return _failed(f"the checking process broke protocol: {exc}")
    except OSError:
        message = None
    if message is None:
        status = exits.wait(worker.pid, timeout=2.0) or {}
        if status.get("signal") in (signal.SIGXCPU, signal.SIGKILL):  # its CPU rlimit
            return too_long
        return _failed("the checking process ended without an answer")
    if message.get("t") != "checked":
        worker.kill()
        return _failed(f"unexpected message from the checking process: {message.get('t')!r}")
    return report_from_data(message, source)


def _failed(why: str) -> SourceCheck:
    return SourceCheck(
        ScriptError("compile_error", f"the script could not be checked ({why}); try again")
    )
