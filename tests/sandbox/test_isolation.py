"""Process isolation, checked inside a real hardened worker process."""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from sandbox import Executor, isolation

PROBE_CHILD = r"""
import json, os, socket, sys
from sandbox import isolation
seccomp = isolation.compile_seccomp()
workdir = sys.argv[1]
parent, child = socket.socketpair()
pid = os.fork()
if pid == 0:
    isolation.harden_worker(child.fileno(), workdir, seccomp, isolation.read_vm_size())
    channel = socket.socket(fileno=isolation.CHANNEL_FD)
    os.close(0)  # free one descriptor, so a refused open is Landlock's doing, not RLIMIT_NOFILE's
    report = {"enforced": isolation.enforced(), "environ": dict(os.environ), "cwd": os.getcwd()}
    for name, attempt in [
        ("socket", lambda: socket.socket()),
        ("fork", lambda: os.fork()),
        ("exec", lambda: os.execv("/bin/true", ["true"])),
        ("read_passwd", lambda: open("/etc/passwd").read()),
        ("write_file", lambda: open("x", "w").write("x")),
        ("kill_parent", lambda: os.kill(os.getppid(), 0)),
    ]:
        try:
            attempt()
            report[name] = "allowed"
        except OSError as exc:
            report[name] = type(exc).__name__
    channel.sendall(json.dumps(report).encode())
    os._exit(0)
child.close()
data = parent.recv(65536)
os.waitpid(pid, 0)
print(data.decode())
"""


@pytest.fixture(scope="module")
def probe() -> dict[str, Any]:
    import subprocess

    root = Path(__file__).resolve().parents[2]
    workdir = tempfile.mkdtemp()
    os.chmod(workdir, 0o555)
    result = subprocess.run(
        [sys.executable, "-c", PROBE_CHILD, workdir],
        cwd=root,
        env={"PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_the_worker_environment_is_empty_and_its_directory_empty(probe: dict[str, Any]) -> None:
    assert probe["environ"] == {}
    assert os.listdir(probe["cwd"]) == []


def test_seccomp_refuses_sockets_fork_and_exec(probe: dict[str, Any]) -> None:
    if "unsupported" in probe["enforced"]["seccomp"]:
        pytest.skip(f"seccomp here: {probe['enforced']['seccomp']}")
    assert probe["socket"] == "PermissionError"
    assert probe["fork"] == "PermissionError"
    assert probe["exec"] == "PermissionError"
    assert probe["kill_parent"] == "PermissionError"


def test_landlock_refuses_the_filesystem(probe: dict[str, Any]) -> None:
    if not probe["enforced"]["landlock"].startswith("abi"):
        pytest.skip(f"Landlock here: {probe['enforced']['landlock']}")
    assert probe["read_passwd"] == "PermissionError"
    assert probe["write_file"] in ("PermissionError", "OSError")


def test_no_new_privileges_and_not_dumpable(probe: dict[str, Any]) -> None:
    assert probe["enforced"]["no_new_privs"] is True
    assert probe["enforced"]["not_dumpable"] is True
    if os.geteuid() == 0:
        assert probe["enforced"]["uid_nobody"] is True


def test_the_zygote_is_a_fresh_isolated_interpreter(executor: Executor) -> None:
    # Once it serves: read while its interpreter was still starting (exec under way), its
    # /proc files were empty (seen once in CI on a busy machine).
    assert executor.run("result = 1").status == "succeeded"
    pid = executor.zygote_pid
    assert pid is not None
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert environ == b""  # nothing of the server's environment, secrets included
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"-I" in cmdline


def test_runs_report_what_was_enforced(executor: Executor) -> None:
    extra = executor.run("result = 1").extra["isolation"]
    assert set(extra) >= {"no_new_privs", "not_dumpable", "landlock", "seccomp"}


def test_workers_hold_only_their_channel(executor: Executor) -> None:
    import time

    deadline = time.monotonic() + 10
    while not (pids := executor.idle_pids()) and time.monotonic() < deadline:
        time.sleep(0.05)  # the pool refills after the previous tests drained it
    assert pids
    for pid in pids:
        # A worker is offered as soon as it is forked and hardens itself before it reads
        # a job; give a just-forked one a moment to finish.
        deadline = time.monotonic() + 5
        while True:
            fds = sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
            if fds == [0, 1, 2, isolation.CHANNEL_FD] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert fds == [0, 1, 2, isolation.CHANNEL_FD]
        assert Path(f"/proc/{pid}/fd/0").resolve() == Path(os.devnull)


def test_a_socket_pair_is_what_the_host_holds() -> None:
    parent, child = socket.socketpair()
    parent.close()
    child.close()
