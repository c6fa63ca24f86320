"""Helpers for the replay tests: a host that parks on cue, and park-then-resume loops."""

from __future__ import annotations

import base64
from typing import Any

from sandbox import PARKED, SUCCEEDED, Executor, HostCall, Journal, Limits, ParkRun, RunResult

LIMITS = Limits(wall_time_s=10, cpu_time_s=5, memory_mb=128)


def response(text: str) -> dict[str, Any]:
    """The reply of a request call as the broker gives it."""
    return {"status": 200, "headers": {}, "body_b64": base64.b64encode(text.encode()).decode()}


class Host:
    """A host call handler that answers each path and parks at the listed live calls.

    `asked` lists every call the handler saw, so a test can check that journalled calls
    were not asked again.
    """

    def __init__(self, *, park_at: set[int]) -> None:
        self.park_at = park_at
        self.asked: list[str] = []
        self.output: list[str] = []

    def __call__(self, call: HostCall) -> Any:
        self.asked.append(call.args.get("path", call.op))
        if len(self.asked) in self.park_at:
            raise ParkRun()
        return response(f"reply {len(self.asked)} to {call.args.get('path')}")


def stored(journal: Journal | None) -> Journal:
    """The journal after the trip through storage (bytes), as the app resumes it."""
    assert journal is not None
    return Journal.from_bytes(journal.to_bytes())


def run_until_done(
    executor: Executor, source: str, host: Host, *, limits: Limits = LIMITS
) -> list[RunResult]:
    """Run, then resume after every park; return every outcome in order."""
    outcomes = [executor.run(source, limits=limits, on_call=host, on_output=host.output.append)]
    while outcomes[-1].status == PARKED:
        outcomes.append(
            executor.run(
                source,
                limits=limits,
                on_call=host,
                on_output=host.output.append,
                journal=stored(outcomes[-1].journal),
            )
        )
    return outcomes


def parked_then_resumed(executor: Executor, source: str) -> tuple[RunResult, RunResult]:
    """Park the run at its first call, resume it; return both outcomes."""
    host = Host(park_at={1})
    outcomes = run_until_done(executor, source, host)
    assert [o.status for o in outcomes] == [PARKED, SUCCEEDED], outcomes[-1].to_dict()
    return outcomes[0], outcomes[1]
