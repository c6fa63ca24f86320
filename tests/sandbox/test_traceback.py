"""An uncaught exception carries the script's own frames (line, function), never the sandbox's;
a frame that comes again right after itself is folded into one with a repeat count, and a
trace too long to keep is cut in the middle, with the count of frames left out."""

from __future__ import annotations

from typing import Any

from sandbox import Executor, HostCallError, Limits
from sandbox.limits import MAX_TRACE_FRAMES, TRACE_OUTERMOST_FRAMES, TraceFrame, trace_from_data

NESTED = """def inner(x):
    return {}[x]

def outer():
    return inner("missing")

result = outer()
"""
RECURSES = "def down(n):\n    return down(n + 1)\ndown(0)\n"
# Two functions calling each other: no frame comes right after itself, so nothing folds,
# and the trace is cut; below them a helper that recursed a few times itself before failing.
PING_PONG = """def count(n):
    if n == 0:
        return 1 / 0
    return count(n - 1)

def ping(n):
    if n == 0:
        return count(3)
    return pong(n - 1)

def pong(n):
    return ping(n)

ping(60)
"""
QUICK = Limits(wall_time_s=5, cpu_time_s=2, memory_mb=128)


def frames(error: Any) -> list[tuple[int, str]]:
    return [(frame.line, frame.name) for frame in error.trace]


def test_the_traceback_lists_the_script_frames_outermost_first(executor: Executor) -> None:
    result = executor.run(NESTED, limits=QUICK)
    assert result.error is not None
    assert result.error.code == "script_error"
    assert frames(result.error) == [(7, "<script>"), (5, "outer"), (2, "inner")]
    assert "trace" not in result.error.to_dict()  # the CLI's shape is unchanged
    assert result.error.to_dict(with_trace=True)["trace"] == [
        {"line": 7, "name": "<script>", "repeated": 0, "omitted_after": 0},
        {"line": 5, "name": "outer", "repeated": 0, "omitted_after": 0},
        {"line": 2, "name": "inner", "repeated": 0, "omitted_after": 0},
    ]


def test_deep_recursion_folds_into_one_frame_with_its_repeat_count(executor: Executor) -> None:
    # It showed 20 identical "line 2, in down" and lost the call on line 3; Python says
    # "[Previous line repeated N more times]".
    result = executor.run(RECURSES, limits=QUICK)
    assert result.error is not None
    assert result.error.message.startswith("RecursionError")
    outer, deep = result.error.trace
    assert outer == TraceFrame(3, "<script>")
    assert (deep.line, deep.name, deep.omitted_after) == (2, "down", 0)
    assert deep.repeated > 100  # as deep as the interpreter let it go
    assert result.error.line == 2


def test_a_trace_too_long_keeps_its_outermost_and_innermost_frames(executor: Executor) -> None:
    result = executor.run(PING_PONG, limits=QUICK)
    assert result.error is not None
    assert result.error.message.startswith("ZeroDivisionError")
    trace = result.error.trace
    assert len(trace) == MAX_TRACE_FRAMES
    # The call on the script's last line stays, and the gap after the outermost frames
    # counts what was left out: of 1 + 121 ping/pong + 4 count frames, the outermost 5
    # and the innermost 15 entries (12 ping/pong, ping on line 8, count 3 times, count) stay.
    outermost = [(14, "<script>"), (9, "ping"), (12, "pong"), (9, "ping"), (12, "pong")]
    assert frames(result.error)[:TRACE_OUTERMOST_FRAMES] == outermost
    assert [f.omitted_after for f in trace] == [0] * 4 + [104] + [0] * 15
    assert frames(result.error)[-3:] == [(8, "ping"), (4, "count"), (3, "count")]
    assert [f.repeated for f in trace[-3:]] == [0, 2, 0]
    assert sum(1 + f.repeated + f.omitted_after for f in trace) == 126


def test_frames_from_the_worker_or_a_stored_run_are_fitted_and_checked() -> None:
    # A run stored before repeats were folded reads as one frame; forged counts are dropped.
    stored = [{"line": 4, "name": "<script>"}] + [{"line": 2, "name": "walk"}] * 20
    assert trace_from_data(stored) == (TraceFrame(4, "<script>"), TraceFrame(2, "walk", 19))
    forged = [{"line": 1, "name": "f", "repeated": -3, "omitted_after": True},
              {"line": 2, "name": "g", "repeated": 2**40}]
    assert trace_from_data(forged) == (TraceFrame(1, "f"), TraceFrame(2, "g"))
    too_long = [{"line": n, "name": "f"} for n in range(1, 101)]
    kept = trace_from_data(too_long)
    assert [f.line for f in kept] == [1, 2, 3, 4, 5, *range(86, 101)]
    assert kept[4].omitted_after == 80


def test_an_integration_error_points_at_the_calling_line(executor: Executor) -> None:
    result = executor.run("x = 1\nintegrations.get('nope', '/')\n", limits=QUICK)
    assert result.error is not None
    assert frames(result.error) == [(2, "<script>")]


def test_an_integration_errors_reason_reaches_the_host_in_its_shape_only(
    executor: Executor,
) -> None:
    # The host's refusal names why (the page's words depend on it); the worker is
    # untrusted, so a reason that is no short snake_case word is dropped.
    def refused(_call: Any) -> Any:
        raise HostCallError("no_integration_grant", "no master account",
                            reason="no_master_account", service="keyed")

    outcome = executor.run('integrations.get("keyed", "/me")', limits=QUICK, on_call=refused)
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.reason) == ("no_integration_grant",
                                                          "no_master_account")
    assert outcome.error.to_dict()["reason"] == "no_master_account"
    forged = executor.run(
        'raise integrations.NoIntegrationGrant("x", reason="Robert\'); DROP TABLE runs;--")',
        limits=QUICK)
    assert forged.error is not None and forged.error.code == "no_integration_grant"
    assert forged.error.reason is None
