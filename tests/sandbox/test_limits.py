"""Every limit ends a run with its code while the executor keeps serving; the host channel;
concurrency and crash isolation."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from sandbox import Executor, HostCall, HostCallError, Limits

INFINITE_LOOP = "while True:\n    pass"
CAUGHT_LOOP = (
    "while True:\n    try:\n        while True:\n            pass\n    except:\n        pass"
)
RECURSION = "def f(n):\n    return f(n + 1)\nf(0)"
BIG_STRING = "x = 'x' * (10 ** 10)"
GROWING_LIST = "a = []\nwhile True:\n    a.append('x' * 100000)"
PRINT_FLOOD = "while True:\n    print('y' * 1000)"
HUGE_INT_STR = "x = str(10 ** 100000)"
HUGE_POWER = "x = 10 ** 10 ** 8"
REGEX_BACKTRACK = "import re\nre.match('(a+)+$', 'a' * 40 + 'b')"
BIG_RESULT = "result = 'r' * (2 * 1024 * 1024)"
SLEEPS = "import time\ntime.sleep(30)"
UNSERIALIZABLE = "result = {1, 2}"

BOMBS = [
    (INFINITE_LOOP, {"cpu_time_s": 1, "wall_time_s": 10}, "failed", "cpu_limit"),
    (CAUGHT_LOOP, {"cpu_time_s": 1, "wall_time_s": 10}, "failed", "cpu_limit"),
    (INFINITE_LOOP, {"cpu_time_s": 30, "wall_time_s": 1}, "timed_out", "timeout"),
    (SLEEPS, {"wall_time_s": 1}, "timed_out", "timeout"),
    (RECURSION, {}, "failed", "script_error"),
    (BIG_STRING, {"memory_mb": 64}, "failed", "memory_limit"),
    (GROWING_LIST, {"memory_mb": 64, "cpu_time_s": 5}, "failed", "memory_limit"),
    (PRINT_FLOOD, {"output_bytes": 10_000}, "failed", "output_limit"),
    (HUGE_INT_STR, {}, "failed", "script_error"),
    (HUGE_POWER, {"cpu_time_s": 1, "wall_time_s": 10}, "failed", "cpu_limit"),
    (REGEX_BACKTRACK, {"cpu_time_s": 1, "wall_time_s": 10}, "failed", "cpu_limit"),
    (BIG_RESULT, {"result_bytes": 1024 * 1024}, "failed", "output_limit"),
    (UNSERIALIZABLE, {}, "failed", "script_error"),
]


@pytest.mark.parametrize(
    ("source", "limits", "status", "code"), BOMBS, ids=[f"bomb-{i}" for i in range(len(BOMBS))]
)
def test_each_limit_ends_the_run_with_its_code(
    executor: Executor, source: str, limits: dict[str, Any], status: str, code: str
) -> None:
    outcome = executor.run(
        source, limits=Limits(**{"wall_time_s": 10, "cpu_time_s": 2, "memory_mb": 128, **limits})
    )
    assert (outcome.status, outcome.error.code if outcome.error else None) == (status, code), (
        outcome.to_dict()
    )
    after = executor.run("result = 'still serving'")
    assert after.result == "still serving"


def test_huge_int_to_str_says_why(executor: Executor) -> None:
    outcome = executor.run(HUGE_INT_STR)
    assert "Exceeds the limit" in outcome.error.message and outcome.error.line == 1


def test_the_call_limit(executor: Executor) -> None:
    outcome = executor.run(
        "for i in range(10):\n    integrations.available()", limits=Limits(max_calls=3)
    )
    assert outcome.error.code == "call_limit" and outcome.calls == 4


def test_the_clock_stops_while_a_person_is_asked(executor: Executor) -> None:
    def paused(call: HostCall) -> Any:
        with call.clock.paused():
            time.sleep(1.5)
        return []

    def unpaused(call: HostCall) -> Any:
        time.sleep(1.5)
        return []

    source = "integrations.available()\nresult = 'done'"
    assert executor.run(source, on_call=paused, limits=Limits(wall_time_s=1)).result == "done"
    late = executor.run(source, on_call=unpaused, limits=Limits(wall_time_s=1))
    assert late.status == "timed_out"


def test_calls_reach_the_host_with_their_arguments(executor: Executor) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def handler(call: HostCall) -> Any:
        seen.append((call.op, call.args))
        if call.op == "request":
            return {
                "status": 201,
                "headers": {"Content-Type": "application/json"},
                "body_b64": "eyJvayI6IHRydWV9",
                "url": "https://x",
                "service": "gh",
            }
        return [] if call.op == "available" else None

    source = """
r = integrations.request("gh", "post", "/repos", params={"a": 1}, json={"b": 2},
                         headers={"X-A": "1"}, timeout=5, account="work")
integrations.get("gh", "/u")
integrations.put("gh", "/u", data="text")
integrations.patch("gh", "/u", data=b"bytes")
integrations.delete("gh", "/u")
integrations.require("gh", account="user")
result = [r.status, r.ok, r.json(), r.headers["content-type"], integrations.available()]
"""
    outcome = executor.run(source, on_call=handler)
    assert outcome.result == [201, True, {"ok": True}, "application/json", []]
    assert seen[0] == (
        "request",
        {
            "service": "gh",
            "method": "POST",
            "path": "/repos",
            "params": {"a": 1},
            "json": {"b": 2},
            "headers": {"X-A": "1"},
            "timeout": 5,
            "account": "work",
        },
    )
    assert [(op, args.get("method")) for op, args in seen[1:5]] == [
        ("request", "GET"),
        ("request", "PUT"),
        ("request", "PATCH"),
        ("request", "DELETE"),
    ]
    assert seen[3][1]["data_b64"] == "Ynl0ZXM="
    assert seen[5] == ("require", {"service": "gh", "account": "user"})


def test_host_errors_become_catchable_integration_errors(executor: Executor) -> None:
    def refuse(call: HostCall) -> Any:
        raise HostCallError("no_integration_grant", "nobody to ask", reason="not_interactive")

    caught = executor.run(
        "try:\n    integrations.get('gh', '/')\nexcept integrations.NoIntegrationGrant as e:\n"
        "    result = [e.code, e.reason, isinstance(e, integrations.IntegrationError)]",
        on_call=refuse,
    )
    assert caught.result == ["no_integration_grant", "not_interactive", True]
    uncaught = executor.run("x = 1\nintegrations.get('gh', '/')", on_call=refuse)
    assert (uncaught.error.code, uncaught.error.line) == ("no_integration_grant", 2)


def test_raise_for_status(executor: Executor) -> None:
    def handler(call: HostCall) -> Any:
        return {"status": 404, "headers": {}, "body_b64": "", "url": "u", "service": "gh"}

    outcome = executor.run("integrations.get('gh', '/').raise_for_status()", on_call=handler)
    assert outcome.error.code == "http_error"


def test_output_streams_line_by_line_as_it_happens(executor: Executor) -> None:
    lines: list[str] = []
    seen_before_call: list[str] = []

    def handler(call: HostCall) -> Any:
        seen_before_call.extend(lines)
        return []

    outcome = executor.run(
        "print('first')\nintegrations.available()\nprint('second')",
        on_output=lines.append,
        on_call=handler,
    )
    assert seen_before_call == ["first\n"]
    assert lines == ["first\n", "second\n"] and outcome.output == "first\nsecond\n"


def test_fifty_concurrent_runs_all_finish_correctly(executor: Executor) -> None:
    results: dict[int, Any] = {}

    def one(i: int) -> None:
        results[i] = executor.run("result = input * 2", input=i).result

    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: i * 2 for i in range(50)}


def test_a_crashing_run_does_not_affect_others(executor: Executor) -> None:
    results: dict[str, Any] = {}

    def crash() -> None:
        results["crash"] = executor.run(INFINITE_LOOP, limits=Limits(cpu_time_s=1)).error.code

    def steady(i: int) -> None:
        results[f"steady-{i}"] = executor.run(
            "total = 0\nfor i in range(20000):\n    total += i\nresult = total"
        ).result

    threads = [threading.Thread(target=crash)] + [
        threading.Thread(target=steady, args=(i,)) for i in range(10)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.pop("crash") == "cpu_limit"
    assert set(results.values()) == {sum(range(20000))}


def test_cancel(executor: Executor) -> None:
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    outcome = executor.run(SLEEPS, cancel=cancel, limits=Limits(wall_time_s=20))
    assert outcome.status == "cancelled" and outcome.duration_ms < 5000


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="memory_mb"):
        Limits(memory_mb=0)
