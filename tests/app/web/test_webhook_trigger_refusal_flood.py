"""A flood of refused calls at a trigger's URL (whoever holds it may send them: past its
throttle each is a 429) costs the database a few writes a second, not one a call: the
first few a second are written as they come, the rest counted in the process and added
with the next written, so the trigger's count still says how many were refused."""

from __future__ import annotations

from typing import Any

import pytest

from app.services import trigger_refusals
from app.services.trigger_refusals import RefusalTally
from tests.app.web.conftest import call
from tests.app.web.test_webhook_triggers import hook, make, triggers_of, world

__all__ = ["world"]  # the fixture, shared with the triggers' own tests


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_is_written_a_few_times_a_second_and_counted_whole(
    world: dict[str, Any],
) -> None:
    clock = Clock()
    world["live"].app.extensions["scriptbox.refusal_tally"] = RefusalTally(
        per_second=3, clock=clock
    )
    made = make(world)
    paused = call(world, "sam", "PATCH", f"{triggers_of(world, 'echo')}/{made['id']}",
                  json={"enabled": False})
    assert paused.status_code == 200, paused.text

    def count() -> int:
        listed = call(world, "sam", "GET", triggers_of(world, "echo")).json()
        found: int = next(t for t in listed if t["id"] == made["id"])["refused_count"]
        return found

    for _ in range(8):  # within one second of the clock's
        assert hook(world, made["url"], json={}).status_code == 409
    assert count() == 3  # three written; five counted for the next
    clock.now += 1.5
    assert hook(world, made["url"], json={}).status_code == 409
    assert count() == 9


def test_the_tally_writes_the_first_each_second_and_forgets_old_urls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    tally = RefusalTally(per_second=2, clock=clock)
    assert [tally.take("a") for _ in range(5)] == [1, 1, 0, 0, 0]
    assert tally.take("b") == 1  # each URL its own
    clock.now += 0.5
    assert tally.take("a") == 0
    clock.now += 0.6
    assert tally.take("a") == 5  # itself and the four counted since
    monkeypatch.setattr(trigger_refusals, "MAX_TRACKED", 3)
    clock.now += 2
    assert [tally.take(name) for name in ("c", "d", "e")] == [1, 1, 1]
    assert len(tally._written) <= 3  # "a" and "b", written 2 s ago, were forgotten
