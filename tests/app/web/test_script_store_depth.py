"""A value nested deeper than the API's answer can carry (pydantic serializes 254 levels,
spectree's check of an answer recurses per level) is refused by the store, in words a
script can catch. A run, any member's (say from its input), stored one before, and the
scripters' GET of the script's store answered a 500: its panel showed nothing."""

from __future__ import annotations

from typing import Any

import pytest

from app.services.script_store import MAX_DEPTH
from app.testing import LiveServer
from tests.app.web.test_script_store import Lab

NESTS = """
value = input["leaf"]
for _ in range(input["depth"]):
    value = {"in": value} if len(input["leaf"]) % 2 else [value]
try:
    store.set("deep", value)
    result = "stored"
except integrations.InvalidRequest as refused:
    result = [refused.code, str(refused)]
store.set("plain", 1)
"""


def _innermost(value: Any) -> tuple[Any, int]:
    depth = 0
    while isinstance(value, list | dict):
        value, depth = (value["in"] if isinstance(value, dict) else value[0]), depth + 1
    return value, depth


@pytest.mark.parametrize("validate", [False, True])  # as served, and as tests check answers
def test_a_value_nested_too_deep_is_refused_and_the_store_still_shows(
    live: LiveServer, validate: bool
) -> None:
    live.app.config["VALIDATE_RESPONSES"] = validate
    lab = Lab(live)
    script_id = lab.script(NESTS)
    base = f"/api/f/lab/scripts/{script_id}/store"
    for depth in (300, 600, MAX_DEPTH + 1):
        done = lab.run(who="mia", script_id=script_id, input={"leaf": "canary", "depth": depth})
        shown = lab.api("sam", "GET", base)
        assert shown.status_code == 200, shown.text[:200]
        assert [entry["key"] for entry in shown.json()["entries"]] == ["plain"]
        assert done["result"] == ["invalid_request", "a stored value may nest lists and objects"
                                  f" at most {MAX_DEPTH} levels deep: keep a flatter value"], done
    for leaf in ("canary", "canary!"):  # lists, then objects
        done = lab.run(who="mia", script_id=script_id, input={"leaf": leaf, "depth": MAX_DEPTH})
        assert done["result"] == "stored", done
        shown = lab.api("sam", "GET", base)
        assert shown.status_code == 200, shown.text[:200]
        entries = {entry["key"]: entry["value"] for entry in shown.json()["entries"]}
        assert entries["plain"] == 1
        assert _innermost(entries["deep"]) == (leaf, MAX_DEPTH)
