"""The host calls behind a script's `store` (one owner: the worker sends them, the host
serves them, the journal names them in a replay's words)."""

from __future__ import annotations

STORE_GET = "store.get"
STORE_SET = "store.set"
STORE_DELETE = "store.delete"
STORE_KEYS = "store.keys"
STORE_OPS = frozenset({STORE_GET, STORE_SET, STORE_DELETE, STORE_KEYS})
# Why a run of source that is no saved script (the terminal's `scriptbox run file.py`, an
# API run of raw source) has no store: the store belongs to a script.
NO_STORE = (
    "this run has no store: the store keeps values for a saved script's runs, and this run"
    " is of source that is not a saved script"
)


def describe_store_call(op: str, key: str) -> str:
    """A store call as a scripter wrote it, e.g. store.get('last_seen')."""
    if op == STORE_KEYS:
        return "store.keys()"
    if op == STORE_SET:
        return f"store.set({key!r}, …)"
    return f"{op}({key!r})"
