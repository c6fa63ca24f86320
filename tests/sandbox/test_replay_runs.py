"""Parked runs resume by replay (DESIGN §4): calls, output, the worker, time and memory."""

from __future__ import annotations

import os
import select
import signal
import threading
from collections.abc import Callable
from typing import Any

import pytest

from sandbox import (
    FAILED,
    PARKED,
    SUCCEEDED,
    TIMED_OUT,
    Executor,
    HostCall,
    HostCallError,
    Limits,
    ParkRun,
)
from tests.sandbox.replaying import LIMITS, Host, response, run_until_done, stored

OUTPUT = """
print('line one')
print('partial ', end='')
integrations.get('svc', '/a')
print('line two')
integrations.get('svc', '/b')
print('done', end='')
result = 'ok'
"""


def test_output_is_delivered_exactly_once_across_parks(executor: Executor) -> None:
    host = Host(park_at={1, 3})
    outcomes = run_until_done(executor, OUTPUT, host)
    assert [o.status for o in outcomes] == [PARKED, PARKED, SUCCEEDED]
    assert "".join(host.output) == "line one\npartial line two\ndone"
    assert outcomes[-1].output == "line one\npartial line two\ndone"
    assert outcomes[-1].journal is not None
    assert outcomes[-1].journal.output_chars == len("line one\npartial line two\ndone")


SEVERAL_CALLS = """
import time, random
got = []
for path in ['/one', '/two', '/three', '/four']:
    got.append([integrations.get('svc', path).text, time.time(), random.random()])
print('finished')
result = got
"""


def test_several_calls_and_several_parks_resume_to_the_live_result(executor: Executor) -> None:
    # Park at the second call, resume; park at the fourth, resume.
    host = Host(park_at={2, 4})
    outcomes = run_until_done(executor, SEVERAL_CALLS, host)
    assert [o.status for o in outcomes] == [PARKED, PARKED, SUCCEEDED]
    # Each call was asked once live, plus once more for each park: never replayed to the host.
    assert host.asked == ["/one", "/two", "/two", "/three", "/three", "/four"]
    final = outcomes[-1]
    texts = [entry[0] for entry in final.result]
    assert texts == ["reply 1 to /one", "reply 3 to /two", "reply 5 to /three", "reply 6 to /four"]
    assert final.calls == 4
    assert final.journal is not None and len(final.journal) == 4
    assert [len(o.journal) for o in outcomes] == [1, 2, 4]  # type: ignore[arg-type]
    # The values seen before the second park are the same in the final run.
    second = outcomes[1].journal
    assert second is not None
    assert final.journal.values[: len(second.values)] == second.values
    assert "".join(host.output) == "finished\n"


def test_a_host_call_error_is_journalled_too(executor: Executor) -> None:
    source = (
        "try:\n    integrations.get('nope', '/x')\nexcept integrations.UnknownIntegration as e:\n"
        "    first = str(e)\nintegrations.get('svc', '/park')\nresult = first\n"
    )
    asked: list[str] = []

    def host(call: HostCall) -> Any:
        asked.append(call.args["service"])
        if call.args["service"] == "nope":
            raise HostCallError("unknown_integration", "no integration named 'nope'")
        if asked.count("svc") == 1:
            raise ParkRun()
        return response("ok")

    parked = executor.run(source, limits=LIMITS, on_call=host)
    resumed = executor.run(source, limits=LIMITS, on_call=host, journal=stored(parked.journal))
    assert (resumed.status, resumed.result) == (SUCCEEDED, "no integration named 'nope'")
    assert asked == ["nope", "svc", "svc"]


def running_worker(executor: Executor, idle_before: set[int]) -> int:
    """The pid of the one worker that left the idle pool since `idle_before`."""
    (pid,) = idle_before - set(executor.idle_pids())
    return pid


def test_a_parked_runs_worker_is_really_gone(executor: Executor) -> None:
    idle_before = set(executor.idle_pids())
    pidfds: list[int] = []

    def host(call: HostCall) -> Any:
        pidfds.append(os.pidfd_open(running_worker(executor, idle_before)))
        signal.pidfd_send_signal(pidfds[0], 0)  # alive while the call is being made
        raise ParkRun()

    outcome = executor.run("integrations.get('svc', '/a')\nresult = 1", on_call=host)
    assert outcome.status == PARKED and outcome.error is None and outcome.calls == 0
    assert outcome.journal is not None and len(outcome.journal) == 0
    try:
        # A pidfd reads ready once its process has exited; the executor returned after that.
        # (poll, not select: a long test session may hold descriptors past select's 1024.)
        poller = select.poll()
        poller.register(pidfds[0], select.POLLIN)
        assert [fd for fd, _event in poller.poll(0)] == [pidfds[0]]
        with pytest.raises(ProcessLookupError):
            signal.pidfd_send_signal(pidfds[0], 0)
    finally:
        os.close(pidfds[0])


WALL = """
import time
time.sleep(2.0)
integrations.get('svc', '/park')
time.sleep(%s)
result = 'finished'
"""


@pytest.mark.parametrize(("live_sleep", "status"), [("0.5", SUCCEEDED), ("3.0", TIMED_OUT)])
def test_wall_time_used_before_the_park_counts_once(
    executor: Executor, live_sleep: str, status: str
) -> None:
    # 4 s of wall time: 2 s before the park + 0.5 s after fits, with 1.5 s to spare for the
    # two runs' own steps on a loaded machine (1 s + 1 s of 3 s left 1 s), and would not
    # if the 2 s counted twice; 2 s + 3 s does not fit, though 3 s alone would.
    limits = Limits(wall_time_s=4, cpu_time_s=2, memory_mb=128)
    source = WALL % live_sleep
    parked = executor.run(source, limits=limits, on_call=Host(park_at={1}))
    assert parked.journal is not None and parked.journal.wall_s >= 2.0
    resumed = executor.run(
        source, limits=limits, on_call=Host(park_at=set()), journal=stored(parked.journal)
    )
    assert resumed.status == status, resumed.to_dict()
    assert resumed.journal is not None and resumed.journal.wall_s >= 2.0 + float(live_sleep) * (
        status == SUCCEEDED
    )


def test_time_waiting_for_a_person_before_the_park_is_not_used(executor: Executor) -> None:
    limits = Limits(wall_time_s=2, cpu_time_s=2, memory_mb=128)
    nobody_answers = threading.Event()

    def host(call: HostCall) -> Any:
        # The app keeps a paused run's worker a while (PARK_AFTER_S), clock stopped.
        with call.clock.paused():
            nobody_answers.wait(timeout=2.5)
        raise ParkRun()

    source = "integrations.get('svc', '/a')\nresult = 'resumed'"
    parked = executor.run(source, limits=limits, on_call=host)
    assert parked.status == PARKED
    resumed = executor.run(
        source, limits=limits, on_call=Host(park_at=set()), journal=stored(parked.journal)
    )
    assert (resumed.status, resumed.result) == (SUCCEEDED, "resumed"), resumed.to_dict()


BIG_REPLIES = "for i in range(3):\n    integrations.get('svc', '/page/%d' % i)\nresult = 'read'"


def big_reply_host(*, park_at: int) -> Callable[[HostCall], Any]:
    calls: list[int] = []

    def host(call: HostCall) -> Any:
        calls.append(1)
        if len(calls) == park_at:
            raise ParkRun()
        return response("x" * 1500)  # about 2 kB as a reply frame

    return host


@pytest.mark.parametrize(
    ("journal_bytes", "park_at", "status", "code"),
    [(100_000, 3, PARKED, None), (3_000, 3, FAILED, "memory_limit"), (3_000, 0, SUCCEEDED, None)],
)
def test_replies_beyond_the_journal_budget_are_not_kept(
    executor: Executor, journal_bytes: int, park_at: int, status: str, code: str | None
) -> None:
    limits = Limits(wall_time_s=10, cpu_time_s=5, memory_mb=128, journal_bytes=journal_bytes)
    outcome = executor.run(BIG_REPLIES, limits=limits, on_call=big_reply_host(park_at=park_at))
    assert (outcome.status, outcome.error.code if outcome.error else None) == (status, code)
    if journal_bytes < 100_000:
        # Two replies of about 2 kB outgrow 3 kB: nothing is kept, nothing could resume.
        assert outcome.journal is None
    else:
        assert outcome.journal is not None and len(outcome.journal) == 2
