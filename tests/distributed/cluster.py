"""A real Scriptbox cluster for tests and benchmarks: web and worker processes on loopback.

Every process is a `scriptbox serve` or `scriptbox worker` started from this checkout
with the scale-out settings (PostgreSQL, Redis under a private prefix, Celery), in its
own session so a test can SIGKILL one with everything it forked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import requests
from flask import Flask
from sqlalchemy.orm import Session

from app import db
from app.integrations.vault import generate_key
from tests.conftest import make_app, stop_app
from tests.distributed.conftest import free_port, redis_url

Seeded = TypeVar("Seeded")

SCRIPTBOX = str(Path(sys.executable).parent / "scriptbox")


class Process:
    """One cluster process; its output is kept, and `ready` is set when it says so."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], ready_text: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._line = threading.Condition()
        self._ready_text = ready_text
        self.popen = subprocess.Popen(
            argv,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # SIGKILL reaches its children and sandbox too
        )
        threading.Thread(target=self._drain, daemon=True, name=f"out-{name}").start()

    def _drain(self) -> None:
        assert self.popen.stdout is not None
        # `kill` closes the pipe once the process is gone; this thread may still be
        # reading its last lines then.
        with contextlib.suppress(ValueError):
            for line in self.popen.stdout:
                with self._line:
                    self.lines.append(line.rstrip())
                    self._line.notify_all()
                if self._ready_text in line:
                    self.ready.set()

    def await_line(self, timeout: float) -> None:
        """Return when the process printed another line, or after `timeout`."""
        with self._line:
            self._line.wait(timeout)

    def pids(self) -> set[int]:
        """This process and every process below it."""
        found, todo = set(), [self.popen.pid]
        while todo:
            pid = todo.pop()
            found.add(pid)
            for task in Path(f"/proc/{pid}/task").glob("*"):
                try:
                    todo += [int(child) for child in (task / "children").read_text().split()]
                except OSError:
                    continue
        return found

    def kill(self) -> None:
        """SIGKILL the process and everything in its session."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(30)
        if self.popen.stdout is not None:
            self.popen.stdout.close()

    def stop(self) -> None:
        """Ask it to stop (SIGTERM), then kill what is left."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def output(self) -> str:
        """What it printed (for failure messages)."""
        return "\n".join(self.lines[-60:])


class Cluster:
    """Web and worker processes sharing one PostgreSQL database and one Redis prefix."""

    def __init__(self, *, database_url: str, redis_url: str, prefix: str, secret_key: str,
                 vault_key: str, extra: dict[str, str] | None = None) -> None:
        self.public_port = free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith("SCRIPTBOX_")}
        self.env = {
            **base,
            "SCRIPTBOX_DATABASE_URL": database_url,
            "SCRIPTBOX_EXECUTOR": "celery",
            "SCRIPTBOX_REDIS_URL": redis_url,
            "SCRIPTBOX_REDIS_PREFIX": prefix,
            "SCRIPTBOX_SECRET_KEY": secret_key,
            "SCRIPTBOX_SECRET_KEYS": vault_key,
            "SCRIPTBOX_PUBLIC_URL": f"http://127.0.0.1:{self.public_port}",
            "SCRIPTBOX_HEARTBEAT_S": "0.5",
            "SCRIPTBOX_IDLE_WORKERS": "1",
            # The loopback test APIs are private addresses the operator must allow.
            "SCRIPTBOX_PRIVATE_NETWORK_ALLOW": "127.0.0.1/32",
            "PYTHONUNBUFFERED": "1",
            **(extra or {}),
        }
        self.processes: list[Process] = []

    def web(self, *, workers: int = 1, threads: int = 8) -> tuple[Process, str]:
        """Start `scriptbox serve` (the first on the public URL's port) with `workers`
        gunicorn worker processes of `threads` threads; wait until it serves."""
        port = self.public_port if not self._webs() else free_port()
        process = Process(f"web-{port}", [SCRIPTBOX, "serve", "--host", "127.0.0.1",
                                          "--port", str(port), "--workers", str(workers),
                                          "--threads", str(threads)], self.env, "Scriptbox on")
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"
        self._await(process)
        # The banner is printed once the socket listens.
        if requests.get(f"{url}/healthz", timeout=30).status_code != 200:
            raise AssertionError(f"{process.name} does not answer:\n{process.output()}")
        return process, url

    def worker(self, concurrency: int = 1) -> Process:
        """Start a Celery worker; wait until it takes tasks."""
        process = Process(f"worker-{len(self.processes)}",
                          [SCRIPTBOX, "worker", "--concurrency", str(concurrency)],
                          self.env, "ready.")
        self.processes.append(process)
        self._await(process)
        return process

    def _webs(self) -> list[Process]:
        return [p for p in self.processes if p.name.startswith("web-")]

    @staticmethod
    def _await(process: Process) -> None:
        if not process.ready.wait(90):
            process.stop()
            raise AssertionError(f"{process.name} did not start:\n{process.output()}")

    def close(self) -> None:
        """Stop every process; print what each said (pytest shows it when a test failed)."""
        for process in self.processes:
            process.stop()
            print(f"----- {process.name}\n{process.output()}")


def await_tasks(workers: list[Process], task: str, *, count: int, timeout: float = 60) -> None:
    """Wait until the workers together logged `count` finished tasks named `task`: Celery
    logs a task's success after it returned, so after the run's row was finished."""

    def done() -> int:
        return sum(1 for w in workers for line in list(w.lines)
                   if task in line and "succeeded" in line)

    deadline = time.monotonic() + timeout
    while done() < count:
        assert time.monotonic() < deadline, [w.output() for w in workers]
        for worker in workers:
            worker.await_line(0.2)


@contextlib.contextmanager
def seeded_cluster(
    folder: Path,
    database_url: str,
    prefix: str,
    secret_key: str,
    seed: Callable[[Session], Seeded],
    *,
    redis: str | None = None,
) -> Iterator[tuple[Flask, Seeded, Cluster]]:
    """A migrated app on `database_url` with what `seed(session)` adds (committed; its
    answer comes back), and a cluster on the same database and keys (and Redis: the
    tests' own unless `redis`), no process started yet. On exit the cluster's processes
    stop, then the app."""
    vault_key = generate_key()
    app = make_app(folder, DATABASE_URL=database_url, SECRET_KEY=secret_key,
                   SECRET_KEYS=[vault_key])
    with app.app_context():
        seeded = seed(db.session())
        db.session.commit()
    db.session.remove()
    cluster = Cluster(database_url=database_url, redis_url=redis or redis_url(), prefix=prefix,
                      secret_key=secret_key, vault_key=vault_key)
    try:
        yield app, seeded, cluster
    finally:
        cluster.close()
        stop_app(app)  # its sessions closed before the pool goes
