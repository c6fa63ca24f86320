"""The zygote: a fresh interpreter that forks single-use workers on request.

Started by the host as `python -I` with an empty environment, it imports only the
standard library, RestrictedPython and this package, so a worker forked from it holds
no secret of the server. It pre-imports everything a script may use (workers cannot
open files once hardened), then forks workers on demand and passes each worker's
channel and pidfd to the host over its control socket (SCM_RIGHTS).

Control messages (JSON on a SOCK_SEQPACKET socket):
  host -> zygote  {"t": "fork", "n": N}
  zygote -> host  {"t": "worker", "pid": P} with fds [channel, pidfd]
  zygote -> host  {"t": "exit", "pid": P, "signal": S, "code": C}  (abnormal exits only)
"""

from __future__ import annotations

# Imported here, before any fork, so workers inherit them ready-made (copy-on-write).
import _strptime  # noqa: F401  # datetime.strptime imports it lazily
import encodings.idna
import encodings.latin_1
import encodings.utf_16
import encodings.utf_32  # noqa: F401
import gc
import hashlib
import hmac
import json
import os
import selectors
import signal
import socket
import sys
import tempfile
from typing import Any

from sandbox import isolation, policy, runtime  # noqa: F401  # policy: pre-import


def _prime() -> None:
    """Warm lazy state (OpenSSL, regex cache) and let 3.11 specialize the hot code paths.

    CPython 3.11 rewrites bytecode in place as functions warm up; doing that here, once,
    spares every worker from copying those pages on its first run.
    """
    hashlib.sha256(b"").hexdigest()
    hmac.new(b"k", b"m", "sha256").hexdigest()
    scratch, other = socket.socketpair()
    with scratch, other:
        for _ in range(64):
            runtime.warm_up(scratch)


def _send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.send(data)


def _fork_worker(
    control: socket.socket, workdir: str, seccomp: isolation.SeccompFilter, warm: bool
) -> None:
    host_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    baseline_vm = isolation.read_vm_size()
    pid = os.fork()
    if pid == 0:  # the worker
        code = 0
        try:
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
                signal.signal(signum, signal.SIG_DFL)
            isolation.harden_worker(worker_end.fileno(), workdir, seccomp, baseline_vm)
            channel = socket.socket(fileno=isolation.CHANNEL_FD)
            if warm:
                runtime.warm_up(channel)
            runtime.serve_one_job(channel)
        except BaseException:
            code = 70
        os._exit(code)
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = -1
    try:
        fds = [host_end.fileno()] + ([pidfd] if pidfd >= 0 else [])
        _send(control, {"t": "worker", "pid": pid}, fds)
    finally:
        host_end.close()
        worker_end.close()
        if pidfd >= 0:
            os.close(pidfd)


def _reap(control: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if os.WIFSIGNALED(status) or os.WEXITSTATUS(status) != 0:
            _send(
                control,
                {
                    "t": "exit",
                    "pid": pid,
                    "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0,
                    "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else 0,
                },
            )


def main(control_fd: int) -> None:
    """Serve fork requests until the host closes the control socket."""
    control = socket.socket(fileno=control_fd)
    workdir = tempfile.mkdtemp(prefix="scriptbox-worker-")
    # Empty and read-only: nothing to find, nowhere to write.
    os.chmod(workdir, 0o555)  # noqa: S103
    seccomp = isolation.compile_seccomp()
    _prime()
    gc.collect()
    gc.freeze()  # keep the collector from dirtying shared pages in every worker

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    try:
        while True:
            for key, _ in selector.select():
                if key.fileobj is control:
                    data = control.recv(4096)
                    if not data:
                        return
                    request = json.loads(data)
                    warm = bool(request.get("warm", True))
                    for _ in range(min(int(request.get("n", 1)), 64)):
                        _fork_worker(control, workdir, seccomp, warm)
                else:
                    os.read(wake_r, 512)
                    _reap(control)
    finally:
        os.rmdir(workdir)
        sys.exit(0)
