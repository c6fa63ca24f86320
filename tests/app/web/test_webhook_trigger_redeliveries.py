"""Redeliveries of a webhook start no second run: a POST carrying an X-GitHub-Delivery or
Idempotency-Key that the same trigger accepted already answers 202 with the first run's
id (`repeated`), even when the deliveries race in together; another trigger's id, or no
id, starts a run as ever."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from typing import Any

from tests.app.web.conftest import run_count
from tests.app.web.test_webhook_triggers import call, ended, hook, make, world

__all__ = ["world"]  # the fixture, shared with the triggers' own tests


def test_a_redelivery_answers_the_first_run(world: dict[str, Any]) -> None:
    made, other = make(world), make(world)
    github = {"X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
    first = hook(world, made["url"], json={"n": 1}, headers=github)
    assert first.status_code == 202, first.text
    run_id = first.json()["run_id"]
    ended(world, run_id)
    before = run_count(world)
    again = hook(world, made["url"], json={"n": 1}, headers=github)
    assert again.status_code == 202, again.text
    assert again.json() == {"run_id": run_id, "status": "succeeded", "repeated": True}
    assert run_count(world) == before
    # The same id at another trigger, another id, or none: each a run of its own.
    assert hook(world, other["url"], json={}, headers=github).json()["run_id"] != run_id
    keyed = hook(world, made["url"], json={}, headers={"Idempotency-Key": "evt_1"}).json()
    assert keyed["run_id"] != run_id and "repeated" not in keyed
    assert hook(world, made["url"], json={},
                headers={"Idempotency-Key": "evt_1"}).json()["run_id"] == keyed["run_id"]
    assert hook(world, made["url"], json={}).json()["run_id"] != run_id
    assert run_count(world) == before + 3

    long = hook(world, made["url"], json={}, headers={"X-GitHub-Delivery": "x" * 201})
    assert long.status_code == 400 and "X-GitHub-Delivery" in long.json()["error"]["message"]

    # Its run deleted: a redelivery is told so, and starts nothing.
    assert call(world, "sam", "DELETE", f"/api/f/lab/runs/{run_id}").status_code == 204
    gone = hook(world, made["url"], json={"n": 1}, headers=github)
    assert gone.status_code == 410, gone.text
    assert "redelivering it starts nothing" in gone.json()["error"]["message"]
    assert run_count(world) == before + 2


def test_concurrent_deliveries_of_one_id_start_one_run(world: dict[str, Any]) -> None:
    made = make(world)
    before = run_count(world)
    senders = 4
    for attempt in range(3):
        barrier = Barrier(senders)
        headers = {"X-GitHub-Delivery": f"race-{attempt}"}

        def send(_: int, barrier: Barrier = barrier, headers: dict[str, str] = headers,
                 body: dict[str, int] = {"attempt": attempt}) -> Any:  # noqa: B006
            barrier.wait(timeout=30)
            return hook(world, made["url"], json=body, headers=headers)

        with ThreadPoolExecutor(senders) as pool:
            answers = list(pool.map(send, range(senders)))
        assert [a.status_code for a in answers] == [202] * senders, [a.text for a in answers]
        assert len({a.json()["run_id"] for a in answers}) == 1
    assert run_count(world) == before + 3
