"""What a script sees as `store`: small JSON values kept between runs of the script.

Like `integrations`, a proxy with no state of its own: each call goes to the host, which
keeps the values per script (so every member's run sees the same ones) and enforces the
limits. Its replies are journalled like any host reply, so a resumed run replays what it
read and does not write twice.
"""

from __future__ import annotations

from typing import Any

from sandbox.script_api import HostCall, InvalidRequest, call_host
from sandbox.store_ops import STORE_DELETE, STORE_GET, STORE_KEYS, STORE_SET


def _checked(key: Any) -> str:
    # Exact str: a script's subclass could compare or hash as it likes.
    if type(key) is not str:
        raise InvalidRequest(f"a store key must be a string, not {type(key).__name__}")
    return key


class Store:
    """The `store` object of a script."""

    def __init__(self, host_call: HostCall) -> None:
        self._host_call = host_call

    def get(self, key: str, default: Any = None) -> Any:
        """The value kept under key, or default when there is none."""
        found = call_host(self._host_call, STORE_GET, {"key": _checked(key)})
        if isinstance(found, dict) and found.get("found"):
            return found.get("value")
        return default

    def set(self, key: str, value: Any) -> None:
        """Keep value (JSON) under key for this script's later runs; written at once."""
        call_host(self._host_call, STORE_SET, {"key": _checked(key), "value": value})

    def delete(self, key: str) -> bool:
        """Forget key; whether it was there."""
        return bool(call_host(self._host_call, STORE_DELETE, {"key": _checked(key)}))

    def keys(self) -> list[str]:
        """The keys kept, sorted."""
        value = call_host(self._host_call, STORE_KEYS, {})
        return [str(key) for key in value] if isinstance(value, list) else []

    def __repr__(self) -> str:
        return "<store>"
