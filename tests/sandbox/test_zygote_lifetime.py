"""The zygote belongs to its host: signals to the host's group pass it by, and its loss
never costs a run that was already going."""

from __future__ import annotations

import os
import signal
import socket
import time
import warnings
from pathlib import Path
from typing import Any

from sandbox import Executor, HostCall


def test_the_zygote_is_out_of_the_hosts_process_group(executor: Executor) -> None:
    # A terminal's Ctrl-C, honcho and systemd signal the host's whole group; the host
    # stops the zygote itself, after its runs.
    pid = executor.zygote_pid
    assert pid is not None
    assert os.getsid(pid) == pid
    assert os.getpgid(pid) != os.getpgid(0)


def test_a_run_keeps_its_outcome_when_the_zygote_is_gone() -> None:
    with Executor(idle_workers=1) as executor:

        def zygote_unreachable(_call: HostCall) -> Any:
            # The zygote hears no more requests (as if it died): the pool's refill after
            # this run fails to reach it.
            assert executor._control is not None
            executor._control.shutdown(socket.SHUT_WR)
            return []

        outcome = executor.run("integrations.available()\nresult = 'done'",
                               on_call=zygote_unreachable)
        assert outcome.status == "succeeded", outcome.error
        assert outcome.result == "done"


def test_an_executor_says_it_stopped_running_when_its_zygote_dies() -> None:
    # What the app asks before each run, to start a new executor in its place.
    executor = Executor(idle_workers=1)
    assert not executor.running
    with executor:
        assert executor.running
        assert executor.zygote_pid is not None
        os.kill(executor.zygote_pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while executor.running and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not executor.running
    assert not executor.running


def test_a_forked_copy_closed_leaves_the_parents_sandbox_running() -> None:
    # A process forked after the sandbox started inherits the executor and its atexit
    # hook: closing it there killed the parent's idle workers and shut the zygote's control
    # socket down, so the zygote exited under the parent and its runs failed.
    with Executor(idle_workers=2) as executor:
        idle = executor.idle_pids()
        with warnings.catch_warnings():
            # Python 3.12+ warns that forking a threaded process may deadlock; the child
            # only closes its copy and exits.
            warnings.simplefilter("ignore", DeprecationWarning)
            child = os.fork()
        if child == 0:
            try:
                executor.close()
            finally:
                os._exit(0)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert executor.running
        assert all(_alive(pid) for pid in idle), idle
        outcomes = [executor.run(f"result = {n}") for n in range(4)]  # more than the idle ones
        assert [(o.status, o.result) for o in outcomes] == [("succeeded", n) for n in range(4)]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
