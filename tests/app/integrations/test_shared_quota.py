"""The monthly call quota counts across processes through Redis (issue 10, item 5).

Two app instances on one database and one Redis stand for two worker processes. Their
calls are held at a loopback upstream until the test lets them go, so every call is in
flight at once: counting only what is in the call log (or per process) would let each
instance spend the whole quota.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import func, select, update

from app import db, extensions
from app.integrations.broker import Broker
from app.integrations.call_context import RunContext
from app.models import CallLog, Facility
from sandbox import HostCall, HostCallError, RunClock
from tests.conftest import create_facility, create_integration, make_app

REDIS_URL = os.environ.get("SCRIPTBOX_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


class HeldUpstream:
    """A loopback API that counts requests and answers only once released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.arrived = threading.Semaphore(0)
        self.count = 0
        lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    upstream.count += 1
                upstream.arrived.release()
                upstream.release.wait(30)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Pair:
    """Two processes' worth of apps and brokers on one database and one Redis."""

    apps: list[Flask]
    brokers: list[Broker]
    ctx: RunContext
    upstream: HeldUpstream
    client: redis.Redis
    prefix: str

    def call(self, which: int, index: int, service: str = "held", path: str = "/x") -> Any:
        """One integrations.get('held', '/x') through broker `which`: 200 or an error code."""
        call = HostCall(
            op="request",
            args={"service": service, "method": "GET", "path": path},
            clock=RunClock(60),
            index=index,
        )
        try:
            return self.brokers[which].handler(self.ctx)(call)["status"]
        except HostCallError as refused:
            return refused.code

    def logged(self) -> int:
        for broker in self.brokers:
            broker.flush()
        with self.apps[0].app_context():
            return int(db.session.scalar(select(func.count(CallLog.id))) or 0)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        if "SCRIPTBOX_TEST_REDIS_URL" in os.environ:
            pytest.fail(f"Redis at {REDIS_URL} does not answer")
        pytest.skip(f"no Redis at {REDIS_URL}")
    prefix = f"sbtest-{secrets.token_hex(4)}"
    upstream = HeldUpstream()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_app(tmp_path / "a", REDIS_URL=REDIS_URL, REDIS_PREFIX=prefix)
    with first.app_context():
        lab = create_facility(db.session())
        lab.monthly_call_quota = 3
        create_integration(db.session(), facility=lab, key="held", auth_mode="none",
                           base_url=upstream.url, placements=[], credential_fields=[])
        db.session.commit()
        ctx = RunContext(facility_id=lab.id, user_id=None)
    second = make_app(tmp_path / "b", DATABASE_URL=first.config["DATABASE_URL"],
                      REDIS_URL=REDIS_URL, REDIS_PREFIX=prefix)
    apps = [first, second]
    brokers = [extensions.build_broker(app, vault=extensions.vault(app)) for app in apps]
    yield Pair(apps, brokers, ctx, upstream, client, prefix)
    upstream.close()
    for broker in brokers:
        broker.flush()
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_two_processes_together_never_pass_the_quota(pair: Pair) -> None:
    # Three calls on each process at once; the quota is three for the facility.
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(pair.call, which, n) for which in (0, 1) for n in range(3)]
        # While three calls wait at the upstream, the three others are answered: refused.
        deadline = time.monotonic() + 60
        while sum(f.done() for f in futures) < 3:
            assert time.monotonic() < deadline, "no call was refused while three were in flight"
            wait(futures, timeout=0.5, return_when=FIRST_COMPLETED)
        refused = [f.result() for f in futures if f.done()]
        assert refused == ["quota_exceeded"] * 3
        for _ in range(3):  # the three admitted calls reach the upstream (and wait there)
            assert pair.upstream.arrived.acquire(timeout=60)
        pair.upstream.release.set()
        answers = [f.result(timeout=60) for f in futures]
    assert sorted(map(str, answers)) == ["200"] * 3 + ["quota_exceeded"] * 3, answers
    assert pair.upstream.count == 3
    assert pair.logged() == 6  # refused calls are in the call log too
    # Later calls from either process are refused: the count holds.
    assert pair.call(0, 7) == pair.call(1, 8) == "quota_exceeded"
    assert pair.upstream.count == 3


def test_a_lost_counter_is_filled_again_from_the_call_log(pair: Pair) -> None:
    pair.upstream.release.set()
    assert [pair.call(0, 0), pair.call(1, 1)] == [200, 200]
    assert pair.logged() == 2
    # Redis restarted (or evicted the key): the next call counts from the call log.
    keys = list(pair.client.scan_iter(match=f"{pair.prefix}:calls:*"))
    assert len(keys) == 1
    pair.client.delete(*keys)
    assert pair.call(1, 2) == 200
    assert pair.call(0, 3) == "quota_exceeded"
    assert pair.upstream.count == 3


def test_while_redis_is_away_calls_are_checked_against_the_call_log(
    pair: Pair, tmp_path: Path
) -> None:
    pair.upstream.release.set()
    assert [pair.call(0, 0), pair.call(1, 1)] == [200, 200]
    assert pair.logged() == 2  # committed: what a process without Redis can count
    with socket.socket() as closed:  # a port nobody listens on: Redis is down
        closed.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"
    (tmp_path / "c").mkdir()
    third = make_app(tmp_path / "c", DATABASE_URL=pair.apps[0].config["DATABASE_URL"],
                     REDIS_URL=dead)
    pair.apps.append(third)
    pair.brokers.append(extensions.build_broker(third, vault=extensions.vault(third)))
    assert pair.call(2, 2) == 200  # two logged calls, a quota of three
    assert pair.call(2, 3) == "quota_exceeded"
    assert pair.upstream.count == 3


def test_calls_that_never_went_out_do_not_use_the_shared_count(pair: Pair) -> None:
    pair.upstream.release.set()
    assert pair.call(0, 0, service="nope") == "unknown_integration"
    assert pair.call(1, 1, path="https://evil.example/x") == "forbidden_destination"
    assert [pair.call(0, 2), pair.call(1, 3), pair.call(0, 4)] == [200, 200, 200]
    assert [pair.call(1, 5), pair.call(0, 6)] == ["quota_exceeded"] * 2
    assert pair.logged() == 7  # all in the call log, three of them usage
    # One more call of quota gives back exactly one call, counted in Redis...
    with pair.apps[0].app_context():
        db.session.execute(update(Facility).values(monthly_call_quota=5))
        db.session.commit()
    assert pair.call(1, 7) == 200
    # ...and when the counter is lost, filled again from the call log's usage alone.
    assert pair.logged() == 8
    pair.client.delete(*pair.client.scan_iter(match=f"{pair.prefix}:calls:*"))
    assert pair.call(0, 8) == 200
    assert pair.call(1, 9) == "quota_exceeded"
    assert pair.upstream.count == 5
