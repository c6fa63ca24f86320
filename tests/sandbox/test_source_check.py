"""A source is checked (compiled, its integration calls read) in a worker with a time limit,
and what a worker reports, as a check or as a run's error, is bounded by the host."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest

from sandbox import CHECK_TIMED_OUT, MAX_SOURCE_BYTES, Call, Executor, Limits, protocol
from sandbox.conversation import Conversation
from sandbox.journal import Journal
from sandbox.limits import MAX_ERROR_CHARS
from sandbox.replay import Replay
from sandbox.source_check import MAX_CALLS, MAX_NAME_CHARS, report_from_data
from sandbox.workers import Exits, Worker

ROOMY = Limits(wall_time_s=30, cpu_time_s=30)
# One f-string of MAX_SOURCE_BYTES with a field every three characters: CPython 3.11's
# parser takes seconds for it (its work grows with the square of the fields).
SLOW_TO_COMPILE = "x = f'" + "{a}" * ((MAX_SOURCE_BYTES - 8) // 3) + "'\n"


def test_a_valid_source_compiles_and_names_its_literal_calls(executor: Executor) -> None:
    source = (
        "a = integrations.get('github', '/user')\n"
        "b = integrations.post('slack', '/chat', account='team')\n"
        "c = integrations.get('github', '/user')\n"
        "d = integrations.get('jira', '/me', account=input)\n"
        "result = [a, b, c, d]\n"
    )
    found = executor.check(source, limits=ROOMY)
    assert found.error is None
    assert found.calls == (
        Call("github"),
        Call("slack", "team"),
        Call("jira", dynamic=True),
    )


@pytest.mark.parametrize(
    ("source", "code", "line", "message"),
    [
        ("x = 1\nx = (\nresult = 2", "compile_error", 2, "SyntaxError: '(' was never closed"),
        (
            "result = 1\nresult = ().__class__",
            "forbidden",
            2,
            '"__class__" is an invalid attribute name because it starts with "_".',
        ),
    ],
)
def test_a_source_that_does_not_compile_is_named_with_its_line(
    executor: Executor, source: str, code: str, line: int, message: str
) -> None:
    found = executor.check(source, limits=ROOMY)
    assert found.error is not None
    assert (found.error.code, found.error.line, found.error.message) == (code, line, message)


def test_a_check_past_its_limit_is_stopped_and_says_what_to_do(executor: Executor) -> None:
    found = executor.check(SLOW_TO_COMPILE, limits=Limits(wall_time_s=0.3, cpu_time_s=1))
    assert found.error is not None and found.error.code == CHECK_TIMED_OUT
    assert found.error.message.startswith("This script took too long to check (over 0.3 s)")
    assert "Split it into smaller scripts or simplify it" in found.error.message
    assert found.calls == ()
    # The worker was killed; the pool goes on checking and running.
    assert executor.check("result = 1", limits=ROOMY).error is None
    assert executor.run("result = 2").result == 2


def test_a_workers_report_is_bounded_before_the_host_uses_it() -> None:
    source = "a = 1\nb = 2\nc = 3\n"  # four lines, as Python numbers them
    calls = [{"key": f"k{i}", "account": None, "dynamic": False} for i in range(5000)]
    found = report_from_data(
        {
            "t": "checked",
            "error": {"code": "anything", "message": "m" * 10**6, "line": 10**12},
            "calls": [
                {"key": "x" * 10**5, "account": "y" * 10**5, "dynamic": True},
                {"key": 7},
                "not a call",
                *calls,
            ],
        },
        source,
    )
    assert found.error is not None
    assert (found.error.code, found.error.line) == ("compile_error", 4)
    assert len(found.error.message) == MAX_ERROR_CHARS
    assert len(found.calls) == MAX_CALLS - 2  # of the first MAX_CALLS, two were not calls
    first = found.calls[0]
    assert (len(first.key), len(first.account or ""), first.dynamic) == (
        MAX_NAME_CHARS,
        MAX_NAME_CHARS,
        False,  # an account named and computed at once is not believed
    )
    for line in (True, -3, 0, "2", 2.0):
        error = report_from_data({"t": "checked", "error": {"line": line}}, source).error
        assert error is not None and error.line is None, line


@pytest.fixture
def compromised_worker() -> Iterator[tuple[Worker, socket.socket]]:
    """A 'worker' whose end the test holds: it says whatever the test sends."""
    host_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    stand_in = subprocess.Popen(["sleep", "60"])  # a real pid for the handle, never this one
    worker = Worker(stand_in.pid, host_end, -1)
    try:
        yield worker, worker_end
    finally:
        stand_in.kill()
        stand_in.wait()
        worker_end.close()
        host_end.close()


def test_a_run_errors_line_from_a_compromised_worker_is_kept_within_the_source(
    compromised_worker: tuple[Worker, socket.socket],
) -> None:
    worker, worker_end = compromised_worker
    done = {
        "t": "done",
        "status": "failed",
        "error": {
            "code": "script_error",
            "message": "m",
            "line": 2**63,
            "trace": [{"line": 2**63, "name": "f"}, {"line": -5, "name": "g"}],
        },
    }

    def answer() -> None:
        protocol.recv_blocking(worker_end)  # the job
        protocol.send(worker_end, done)

    answering = threading.Thread(target=answer)
    answering.start()
    limits = Limits(wall_time_s=30)
    outcome = Conversation(
        worker=worker,
        limits=limits,
        on_call=lambda call: None,
        on_output=None,
        cancel=None,
        exits=Exits(),
        replay=Replay(Journal(), max_bytes=limits.journal_bytes),
    ).execute({"t": "job", "source": "x = 1\ny = 2\nz = 3"})
    answering.join()
    assert outcome.error is not None
    assert outcome.error.line == 3
    assert [frame.line for frame in outcome.error.trace] == [3, 1]


def test_a_frame_sent_byte_by_byte_does_not_outlast_its_timeout() -> None:
    host_end, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    frame = protocol.encode({"t": "done", "padding": "p" * 200})
    stop = threading.Event()

    def trickle() -> None:
        # A byte every 20 ms: each arrives well within the timeout, the frame long after it.
        for byte in frame:
            if stop.wait(0.02):
                return
            peer.send(bytes([byte]))

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        with pytest.raises(TimeoutError):
            protocol.FrameReader(host_end).read(0.5)
    finally:
        stop.set()
        sender.join()
        host_end.close()
        peer.close()
