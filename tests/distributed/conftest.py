"""Fixtures for the scale-out tests: the test Redis under a fresh key prefix, own Redis servers,
a seed's scripter and her script, the runs as they are now.

The shared Redis is `SCRIPTBOX_TEST_REDIS_URL` (CI exports it; default db 15 of the
local server); every test gets a random prefix and its keys are deleted afterwards.
When that variable is set the server must answer; otherwise the tests skip without it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from app import db
from app.models import Role, Run, Script
from app.models._types import utcnow
from app.services import schedules
from app.services.context import MemberContext
from app.services.scripts import create_run, create_script
from tests.conftest import add_member, create_facility, create_user, make_app

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


def redis_url() -> str:
    """The Redis database the tests may use (never db 0)."""
    return os.environ.get("SCRIPTBOX_TEST_REDIS_URL", DEFAULT_REDIS_URL)


def celery_app(tmp_path: Path, postgres_url: str, redis_prefix: str, **settings: Any) -> Flask:
    """An app on PostgreSQL that sends its runs to Celery over the test Redis, its keys
    under `redis_prefix`, with these settings."""
    return make_app(
        tmp_path,
        DATABASE_URL=postgres_url,
        EXECUTOR="celery",
        REDIS_URL=redis_url(),
        REDIS_PREFIX=redis_prefix,
        **settings,
    )


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A fresh key prefix on the test Redis; its keys are deleted afterwards."""
    client = redis.Redis.from_url(redis_url())
    try:
        client.ping()
    except redis.ConnectionError:
        if "SCRIPTBOX_TEST_REDIS_URL" in os.environ:
            pytest.fail(f"Redis at {redis_url()} does not answer")
        pytest.skip(f"no Redis at {redis_url()}")
    prefix = f"sbtest-{secrets.token_hex(4)}"
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class OwnRedis:
    """A private redis-server on a free port that a test may stop and start again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server (no persistence) and wait until it answers."""
        binary = shutil.which("redis-server")
        assert binary, "redis-server is missing: apt-get install redis-server"
        self._process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)  # the server is starting: nothing to await but its port
        client.close()

    def stop(self) -> None:
        """Kill the server (its data is gone: no persistence)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A private Redis server, for tests that restart it."""
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def echo_scripter(session: Session) -> tuple[MemberContext, Script]:
    """Facility `lab`, its scripter ada@example.com and her published script "Echo" (its
    result is its input): a seed's start."""
    lab = create_facility(session, slug="lab")
    ada = create_user(session, email="ada@example.com")
    add_member(session, user=ada, facility=lab, role=Role.scripter)
    member = MemberContext(ada, lab, Role.scripter)
    script = create_script(session, member, name="Echo", source="result = input",
                           published=True)
    return member, script


def failed_schedule_runs(
    session: Session, member: MemberContext, script: Script, count: int, *,
    error_code: str, **schedule: Any,
) -> dict[str, int]:
    """`count` yearly schedules of `script` (no due time comes while a test runs), with one
    retry a minute after a failure and the `schedule` settings, whose last run ended
    `failed` (`error_code`) an hour ago, so its retry is due: failed run id -> schedule id."""
    failed: dict[str, int] = {}
    for n in range(count):
        made = schedules.create_schedule(
            session, member, script, cron="0 0 1 1 *", run_input={"n": n},
            retries=1, retry_delay_s=60, **schedule,
        )
        run = create_run(session, member, script_id=script.id, source=None,
                         run_input={"n": n}, interactive=False, schedule_id=made.id)
        session.execute(update(Run).where(Run.id == run.id).values(
            status="failed", error_code=error_code, finished_at=utcnow() - timedelta(hours=1)))
        made.last_run_id = run.id
        failed[run.id] = made.id
    return failed

def runs_where(app: Flask, *criteria: ColumnElement[bool]) -> list[Run]:
    """The app's runs that meet `criteria` as they are now, detached (read after the
    session is gone)."""
    with app.app_context():
        found = list(db.session.scalars(select(Run).where(*criteria)))
        for run in found:
            db.session.expunge(run)
    db.session.remove()
    return found
