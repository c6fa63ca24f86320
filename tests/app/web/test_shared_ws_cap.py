"""Open pages per user are capped across web processes through Redis (issue 10, item 5).

Two app instances on one database and one Redis stand for two web processes.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app import db
from app.distributed.redis_slots import RedisConnectionSlots
from app.models import Role
from app.testing import LiveServer, Socket, WebClient
from tests.conftest import add_member, create_facility, create_user, make_app

REDIS_URL = os.environ.get("SCRIPTBOX_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    found = redis.Redis.from_url(REDIS_URL)
    try:
        found.ping()
    except redis.ConnectionError:
        if "SCRIPTBOX_TEST_REDIS_URL" in os.environ:
            pytest.fail(f"Redis at {REDIS_URL} does not answer")
        pytest.skip(f"no Redis at {REDIS_URL}")
    yield found
    found.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    name = f"sbtest-{secrets.token_hex(4)}"
    yield name
    keys = list(client.scan_iter(match=f"{name}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def browsers(tmp_path: Path, prefix: str) -> Iterator[tuple[WebClient, WebClient]]:
    """Ada's browsers on web process one and on web process two (cap: two pages)."""
    config = {"REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix, "WS_MAX_CONNECTIONS_PER_USER": 2}
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = make_app(tmp_path / "one", **config)
    with one.app_context():
        lab = create_facility(db.session(), slug="lab")
        ada = create_user(db.session())
        add_member(db.session(), user=ada, facility=lab, role=Role.member)
        db.session.commit()
        ada_id = ada.id
    two = make_app(tmp_path / "two", DATABASE_URL=one.config["DATABASE_URL"], **config)
    servers = [LiveServer(one), LiveServer(two)]
    yield WebClient(one, servers[0].url, ada_id), WebClient(two, servers[1].url, ada_id)
    for server in servers:
        server.close()


def _refused(page: Socket) -> bool:
    message = page.next()
    assert message is not None
    if message["type"] == "hello":
        return False
    assert message["code"] == "too_many_connections", message
    return True


def test_pages_on_two_web_processes_share_the_users_cap(
    browsers: tuple[WebClient, WebClient],
) -> None:
    on_one, on_two = browsers
    first, second = on_one.websocket("lab"), on_two.websocket("lab")
    first.wait_for("hello")
    second.wait_for("hello")
    # Each process holds one page: counted per process, a third would fit on either.
    assert _refused(on_one.websocket("lab"))
    assert _refused(on_two.websocket("lab"))
    second.close()
    # The closed page's slot comes back (process two notices the close on its next read).
    for _attempt in range(50):
        third = on_one.websocket("lab")
        if not _refused(third):
            break
    else:
        pytest.fail("the page closed on process two never gave its slot back")
    first.close()
    third.close()


def test_a_dead_processs_slots_lapse_and_renewal_keeps_a_live_one(
    client: redis.Redis, prefix: str
) -> None:
    slots = RedisConnectionSlots(client, prefix=prefix, lease_s=60)
    live, dead = slots.acquire(7, 2), slots.acquire(7, 2)
    assert live and dead and slots.acquire(7, 2) is None
    # The process holding `dead` was killed an hour ago: its lease ran out.
    key = f"{prefix}:ws:7"
    client.zadd(key, {dead: int(client.time()[0]) - 3600})
    slots.renew(7, live)
    taken = slots.acquire(7, 2)
    assert taken is not None and slots.acquire(7, 2) is None
    assert set(client.zrange(key, 0, -1)) == {live.encode(), taken.encode()}
    # A renewal puts back a slot that Redis lost (a restart without persistence).
    client.delete(key)
    slots.renew(7, live)
    assert client.zrange(key, 0, -1) == [live.encode()]
    slots.release(7, live)
    assert client.zcard(key) == 0
