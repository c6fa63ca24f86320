"""An uncaught exception carries the script's own frames (line, function), never the sandbox's."""

from __future__ import annotations

from typing import Any

from sandbox import Executor, HostCallError, Limits

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
