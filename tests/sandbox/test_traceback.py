"""An uncaught exception carries the script's own frames (line, function), never the sandbox's."""

from __future__ import annotations

from typing import Any

from sandbox import Executor, Limits

NESTED = """def inner(x):
    return {}[x]

def outer():
    return inner("missing")

result = outer()
"""
RECURSES = "def down(n):\n    return down(n + 1)\ndown(0)\n"
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
        {"line": 7, "name": "<script>"},
        {"line": 5, "name": "outer"},
        {"line": 2, "name": "inner"},
    ]


def test_deep_recursion_keeps_the_innermost_twenty_frames(executor: Executor) -> None:
    result = executor.run(RECURSES, limits=QUICK)
    assert result.error is not None
    assert frames(result.error) == [(2, "down")] * 20


def test_an_integration_error_points_at_the_calling_line(executor: Executor) -> None:
    result = executor.run("x = 1\nintegrations.get('nope', '/')\n", limits=QUICK)
    assert result.error is not None
    assert frames(result.error) == [(2, "<script>")]
