"""A script's `store`: the worker's proxy, its host calls and their replay (no Flask here:
an in-memory host stands for the app's store)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sandbox import (
    FAILED,
    NO_STORE,
    PARKED,
    REPLAY_DIVERGED,
    STORE_DELETE,
    STORE_GET,
    STORE_KEYS,
    STORE_SET,
    SUCCEEDED,
    Executor,
    HostCall,
    ParkRun,
)
from tests.sandbox.replaying import LIMITS, response, stored


class MemoryStore:
    """A host that keeps one script's store in a dict, answers requests, and parks on cue."""

    def __init__(self, *, park_on_request: bool = False) -> None:
        self.values: dict[str, Any] = {}
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self.park_on_request = park_on_request

    def __call__(self, call: HostCall) -> Any:
        self.asked.append((call.op, call.args))
        if call.op == STORE_GET:
            key = call.args["key"]
            return {"found": True, "value": self.values[key]} if key in self.values else {
                "found": False}
        if call.op == STORE_SET:
            self.values[call.args["key"]] = call.args["value"]
            return None
        if call.op == STORE_DELETE:
            return self.values.pop(call.args["key"], None) is not None
        if call.op == STORE_KEYS:
            return sorted(self.values)
        if self.park_on_request:
            self.park_on_request = False
            raise ParkRun()
        return response("ok")


COUNTER = """
seen = store.get("count", 0)
store.set("count", seen + 1)
store.set("items", {"last": [1, "two", None]})
result = {"seen": seen, "keys": store.keys(), "items": store.get("items")}
"""


def test_a_value_set_in_one_run_is_read_in_the_next(executor: Executor) -> None:
    host = MemoryStore()
    first = executor.run(COUNTER, limits=LIMITS, on_call=host)
    second = executor.run(COUNTER, limits=LIMITS, on_call=host)
    assert first.status == SUCCEEDED, first.to_dict()
    assert first.result == {"seen": 0, "keys": ["count", "items"],
                            "items": {"last": [1, "two", None]}}
    assert second.result["seen"] == 1 and host.values["count"] == 2
    # Store calls are host calls, not requests to a service: a run's `calls` counts none.
    assert (first.calls, first.requests) == (5, 0)


def test_get_default_delete_and_keys(executor: Executor) -> None:
    host = MemoryStore()
    host.values = {"b": 2, "a": None}
    source = """
result = [store.get("a", "d"), store.get("zz"), store.get("zz", []), store.delete("b"),
          store.delete("b"), store.keys()]
"""
    done = executor.run(source, limits=LIMITS, on_call=host)
    assert done.result == [None, None, [], True, False, ["a"]], done.to_dict()


def test_a_key_that_is_not_a_string_is_refused_before_any_host_call(executor: Executor) -> None:
    host = MemoryStore()
    source = """
class Sly(str):
    pass
caught = []
for key in (1, None, ("a",), Sly("a")):
    try:
        store.set(key, 1)
    except integrations.InvalidRequest as refused:
        caught.append([refused.code, str(refused)])
result = caught
"""
    done = executor.run(source, limits=LIMITS, on_call=host)
    assert done.status == SUCCEEDED, done.to_dict()
    assert [code for code, _ in done.result] == ["invalid_request"] * 4
    assert done.result[0][1] == "a store key must be a string, not int"
    assert host.asked == []


def test_a_value_that_is_not_json_is_refused(executor: Executor) -> None:
    host = MemoryStore()
    source = """
try:
    store.set("k", {1, 2})
except integrations.InvalidRequest as refused:
    result = str(refused)
"""
    done = executor.run(source, limits=LIMITS, on_call=host)
    assert done.result.startswith("arguments must be JSON-serializable"), done.to_dict()
    assert host.asked == []


def test_without_a_store_the_default_host_says_why(executor: Executor) -> None:
    source = """
try:
    store.get("k")
except integrations.InvalidRequest as refused:
    result = [refused.code, str(refused)]
"""
    done = executor.run(source, limits=LIMITS)
    assert done.result == ["invalid_request", NO_STORE], done.to_dict()


def test_the_script_cannot_reach_the_proxys_insides(executor: Executor) -> None:
    for source in ("x = store._host_call\n", "x = getattr(store.get, '__self__')\n"):
        done = executor.run(source, limits=LIMITS)
        assert done.status == FAILED and done.error is not None
        assert done.error.code == "forbidden", source


PARKS_AFTER_A_READ = """
before = store.get("cursor", 0)
store.set("cursor", before + 10)
integrations.get("svc", "/wait")
result = {"before": before, "after": store.get("cursor")}
"""


def test_a_resumed_run_replays_its_reads_and_does_not_write_twice(executor: Executor) -> None:
    host = MemoryStore(park_on_request=True)
    host.values["cursor"] = 5
    parked = executor.run(PARKS_AFTER_A_READ, limits=LIMITS, on_call=host)
    assert parked.status == PARKED, parked.to_dict()
    assert host.values["cursor"] == 15  # written at call time, before the park
    # Another run changes the value while this one is parked.
    host.values["cursor"] = 100
    host.asked.clear()
    resumed = executor.run(
        PARKS_AFTER_A_READ, limits=LIMITS, on_call=host, journal=stored(parked.journal)
    )
    assert resumed.status == SUCCEEDED, resumed.to_dict()
    # The replayed read returns what the first run read; its set is not made again; the
    # read after the resume is live and sees the other run's value.
    assert resumed.result == {"before": 5, "after": 100}
    assert [op for op, _ in host.asked] == ["request", STORE_GET]
    assert host.values["cursor"] == 100


def test_a_resumed_run_asking_another_key_diverges_naming_both(executor: Executor) -> None:
    host = MemoryStore(park_on_request=True)
    parked = executor.run(PARKS_AFTER_A_READ, limits=LIMITS, on_call=host)
    assert parked.status == PARKED
    edited = PARKS_AFTER_A_READ.replace('store.get("cursor", 0)', 'store.get("other", 0)')
    diverged = executor.run(edited, limits=LIMITS, on_call=host, journal=stored(parked.journal))
    assert diverged.status == FAILED and diverged.error is not None
    assert diverged.error.code == REPLAY_DIVERGED
    assert diverged.error.message == (
        "the resumed run did not retrace its steps: call 1 was store.get('cursor') the "
        "first time, now store.get('other')"
    )


def test_store_calls_count_against_the_runs_call_limit(executor: Executor) -> None:
    host = MemoryStore()
    source = "for i in range(10):\n    store.set('k%d' % i, i)\n"
    done = executor.run(source, limits=replace(LIMITS, max_calls=3), on_call=host)
    assert done.status == FAILED and done.error is not None
    assert done.error.code == "call_limit"
    assert done.error.message.startswith("the script made more than 3 integration and store")
    assert len(host.asked) == 3
