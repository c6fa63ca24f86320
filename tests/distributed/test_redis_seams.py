"""The Redis EventBus and GrantSignals between two independent clients (two "processes").

Each side has its own Redis connection and listener, as two web or worker processes
would; nothing is shared but the Redis server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis

from app.distributed.pubsub import RedisListener
from app.distributed.redis_bus import RedisEventBus
from app.distributed.redis_signals import RedisGrantSignals
from app.distributed.sweep_turns import SweepTurns
from app.seams import GrantOutcome
from tests.distributed.conftest import OwnRedis, free_port, redis_url


class Side:
    """One process's view: a client, a listener, a bus and signals."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.listener = RedisListener(self.client)
        self.bus = RedisEventBus(self.client, self.listener, prefix=prefix)
        self.signals = RedisGrantSignals(self.client, self.listener, prefix=prefix)

    def close(self) -> None:
        self.listener.close()
        self.client.close()


@pytest.fixture
def sides(redis_prefix: str) -> Iterator[tuple[Side, Side]]:
    a, b = Side(redis_url(), redis_prefix), Side(redis_url(), redis_prefix)
    yield a, b
    a.close()
    b.close()


def test_a_page_on_one_process_gets_what_another_publishes(sides: tuple[Side, Side]) -> None:
    web_a, worker = sides
    assert not worker.bus.has_listeners(7, 3)
    page = web_a.bus.subscribe(7, 3)
    assert worker.bus.has_listeners(7, 3)
    assert not worker.bus.has_listeners(7, 4)  # another facility of the same user

    reached = worker.bus.publish(7, 3, {"type": "run.output", "run_id": "r1", "data": "hi"})
    assert reached == 1
    assert page.get(timeout=10) == {"type": "run.output", "run_id": "r1", "data": "hi"}
    worker.bus.publish(7, 4, {"type": "run.output", "run_id": "r2", "data": "not yours"})
    worker.bus.publish(7, 3, {"type": "run.status", "run_id": "r1", "status": "running"})
    assert page.get(timeout=10) == {"type": "run.status", "run_id": "r1", "status": "running"}

    page.close()
    assert not worker.bus.has_listeners(7, 3)
    assert worker.bus.publish(7, 3, {"type": "run.output", "run_id": "r1", "data": "x"}) == 0


def test_two_pages_of_one_user_in_one_process_both_hear_and_close_apart(
    sides: tuple[Side, Side],
) -> None:
    web_a, worker = sides
    first, second = web_a.bus.subscribe(1, 1), web_a.bus.subscribe(1, 1)
    assert worker.bus.publish(1, 1, {"type": "run.status", "status": "queued"}) == 1
    assert first.get(timeout=10) == second.get(timeout=10) == {
        "type": "run.status", "status": "queued"}
    first.close()
    assert worker.bus.has_listeners(1, 1)  # the second page keeps the channel
    worker.bus.publish(1, 1, {"type": "run.status", "status": "running"})
    assert second.get(timeout=10) == {"type": "run.status", "status": "running"}
    second.close()
    assert not worker.bus.has_listeners(1, 1)


def test_an_admins_page_elsewhere_watches_the_facilitys_run_events(
    sides: tuple[Side, Side],
) -> None:
    web_a, worker = sides
    admin = web_a.bus.subscribe(1, 3, watch=True)
    member = web_a.bus.subscribe(2, 3)
    other = web_a.bus.subscribe(4, 9, watch=True)  # an admin of another facility
    prompt = {"type": "grant.required", "grant_id": "g"}
    worker.bus.publish(5, 3, prompt)  # not for watchers: the prompt is user 5's own
    status = {"type": "run.status", "run_id": "r5", "status": "running"}
    worker.bus.publish(5, 3, status, watchers=True)
    assert admin.get(timeout=10) == status
    own = {"type": "run.status", "run_id": "r1", "status": "parked"}
    worker.bus.publish(1, 3, own, watchers=True)
    assert admin.get(timeout=10) == own
    assert admin.get(timeout=0.5) is None  # once, though it was published for watchers too
    # Canaries on the member's own channel and on the other facility: nothing came before.
    worker.bus.publish(2, 3, {"type": "canary"})
    worker.bus.publish(4, 9, {"type": "canary"})
    assert member.get(timeout=10) == {"type": "canary"}
    assert other.get(timeout=10) == {"type": "canary"}
    for page in (admin, member, other):
        page.close()
    # The watch channel is let go once its last page closed.
    assert worker.client.pubsub_numsub(web_a.bus.watch_channel(3)) == [
        (web_a.bus.watch_channel(3).encode(), 0)]


def test_a_grant_answered_elsewhere_wakes_the_waiting_run(sides: tuple[Side, Side]) -> None:
    worker, web_b = sides
    got: list[GrantOutcome | None] = []
    waiting = threading.Thread(target=lambda: got.append(worker.signals.wait("g1", "r1", 60)))
    worker.signals.listen()  # subscribed before the answer, as a waiting worker is
    waiting.start()
    web_b.signals.notify("g1", GrantOutcome("granted", 42))
    waiting.join(30)
    assert got == [GrantOutcome("granted", 42)]


def test_a_waiter_that_arrives_after_the_answer_still_gets_it(sides: tuple[Side, Side]) -> None:
    worker, web_b = sides
    web_b.signals.notify("g2", GrantOutcome("refused"))
    assert worker.signals.wait("g2", "r2", 30) == GrantOutcome("refused")
    assert worker.signals.wait("g-other", "r2", 0.01) is None


def test_cancelling_a_run_elsewhere_wakes_its_wait_and_reaches_its_worker(
    sides: tuple[Side, Side],
) -> None:
    worker, web_b = sides
    cancelled_here = threading.Event()
    worker.signals.on_cancel(lambda run_id: run_id == "r3" and cancelled_here.set())
    worker.signals.listen()
    got: list[GrantOutcome | None] = []
    waiting = threading.Thread(target=lambda: got.append(worker.signals.wait("g3", "r3", 60)))
    waiting.start()
    web_b.signals.cancel_run("r3")
    waiting.join(30)
    assert got == [GrantOutcome("cancelled")]
    assert cancelled_here.wait(10)
    # A run that parked is resumed later: that cancel must not end its next prompt.
    worker.signals.forget_run("r3", parked=True)
    assert worker.signals.wait("g4", "r3", 0.01) is None  # forgotten: no longer cancelled


def test_a_run_that_ended_leaves_its_cancel_marker_to_expire(
    sides: tuple[Side, Side], redis_prefix: str,
) -> None:
    worker, web_b = sides
    worker.signals.listen()
    web_b.signals.cancel_run("r5")
    marker = f"{redis_prefix}:run-cancelled:r5"
    worker.signals.forget_run("r5")  # ended: no DELETE, the marker expires by itself
    assert 0 < worker.client.ttl(marker) <= 3600
    worker.signals.forget_run("r5", parked=True)
    assert worker.client.exists(marker) == 0


def test_a_redis_restart_wakes_waiters_and_pages_hear_again(own_redis: OwnRedis) -> None:
    web, worker = Side(own_redis.url, "t"), Side(own_redis.url, "t")
    try:
        page = web.bus.subscribe(5, 5)
        worker.signals.listen()
        got: list[GrantOutcome | None] = []
        waiting = threading.Thread(target=lambda: got.append(worker.signals.wait("g", "r", 600)))
        waiting.start()

        own_redis.stop()
        own_redis.start()  # empty: every subscription and stored key is gone
        # The waiter wakes with no outcome (it might have missed one) instead of sleeping
        # until its prompt expires; the grant coordinator then re-reads the database.
        waiting.join(60)
        assert not waiting.is_alive() and got == [None]
        # Its pages are told to reconnect: what was published meanwhile never came, and a
        # page that connects again reads what it follows afresh.
        assert page.closed.wait(60) and page.close_reason[0] == 1012

        # The page's channel is subscribed again: a publish after the restart reaches it.
        delivered = None
        for _ in range(100):
            if web.bus.has_listeners(5, 5):
                worker.bus.publish(5, 5, {"type": "run.status", "status": "running"})
                delivered = page.get(timeout=0.2)
                if delivered is not None:
                    break
            else:
                page.get(timeout=0.1)  # the listener is reconnecting: give it the time
        assert delivered == {"type": "run.status", "status": "running"}
        page.close()
    finally:
        web.close()
        worker.close()


def test_one_process_of_the_cluster_takes_each_beats_sweep(redis_prefix: str) -> None:
    # A beat of 2 s: the askers after the first must all ask before its turn lapses (1.8 s
    # later), which a stall of a loaded machine could outlast at a beat of 0.2 s (0.18 s).
    clients = [redis.Redis.from_url(redis_url()) for _ in range(3)]
    turns = [SweepTurns(client, prefix=redis_prefix, interval_s=2.0) for client in clients]
    key = f"{redis_prefix}:sweep-turn"
    try:
        assert [turn() for turn in turns] == [True, False, False]
        assert not turns[0]()  # asking again within the beat does not sweep twice
        assert 0 < clients[0].pttl(key) <= 1800  # the turn lapses within the beat (0.9 of it)
        deadline = time.monotonic() + 30
        while clients[0].exists(key):
            assert time.monotonic() < deadline, "the turn never lapsed"
            time.sleep(0.05)  # polling Redis's expiry: nothing to block on
        # Lapsed: the next asker takes it.
        assert [turn() for turn in reversed(turns)] == [True, False, False]
    finally:
        for client in clients:
            client.close()


def test_every_process_sweeps_while_redis_is_unreachable(redis_prefix: str) -> None:
    nobody = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)
    turns = SweepTurns(nobody, prefix=redis_prefix, interval_s=0.2)
    assert turns() and turns()  # a sweep is safe to repeat; skipping one is not
