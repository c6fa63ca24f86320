"""Store keys "." and "..": a browser resolves them as a URL's path segments, so the Store
panel's Delete of such a key (DELETE .../store/<key>) went to another address, the
script's own URL or the store's (DELETE /api/f/lab/scripts/1/), and the key could not be
deleted alone. A run (any member's, say from its input) could store them; now the store
refuses them in words a script can catch, and keys with dots in them are kept."""

from __future__ import annotations

from app.testing import LiveServer
from tests.app.web.test_script_store import Lab

SETS = """
outcomes = {}
for key in input["keys"]:
    try:
        store.set(key, "canary")
        outcomes[key] = "stored"
    except integrations.InvalidRequest as refused:
        outcomes[key] = str(refused)
result = outcomes
"""


def test_dot_segment_keys_are_refused_and_dotted_keys_kept(live: LiveServer) -> None:
    lab = Lab(live)
    script_id = lab.script(SETS)
    keys = [".", "..", "...", ".a", "a..", "../x"]
    done = lab.run(who="mia", script_id=script_id, input={"keys": keys})
    assert done["result"] == {
        ".": "a store key must not be '.': the address of a key (the API's, the Store panel's"
             " Delete) cannot name it",
        "..": "a store key must not be '..': the address of a key (the API's, the Store"
              " panel's Delete) cannot name it",
        "...": "stored", ".a": "stored", "a..": "stored", "../x": "stored",
    }, done
    base = f"/api/f/lab/scripts/{script_id}/store"
    kept = [entry["key"] for entry in lab.api("sam", "GET", base).json()["entries"]]
    assert sorted(kept) == ["...", "../x", ".a", "a.."]
    for key in ("...", ".a", "..%2Fx", "a.."):  # each one addressable alone
        assert lab.api("sam", "DELETE", f"{base}/{key}").status_code == 204, key
