"""Script values as plain JSON data, copied without trusting the script and capped in size.

A script's `result` and the arguments of its integration calls leave the worker as JSON.
Encoding them directly would call the script's own methods (a dict subclass's `items`)
and would build the whole text before its size could be checked, so a 100 MB value
would exhaust the worker's memory instead of ending with its size limit. `snapshot`
copies the value into exact built-in types, reading containers through the built-in
types' own methods, and stops as soon as a lower bound of the encoded size passes the cap.
"""

from __future__ import annotations

import json
from typing import Any


class TooLarge(Exception):
    """The value's JSON would be larger than the cap."""


class _Budget:
    """Counts a lower bound of the encoded size; raises TooLarge once it passes the cap."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0

    def spend(self, size: int) -> None:
        self.used += size
        if self.used > self.max_bytes:
            raise TooLarge(f"larger than {self.max_bytes} bytes")


def _key(key: Any) -> str | int | float | bool | None:
    # The key types json accepts; each copied to its exact built-in type.
    if isinstance(key, str):
        return str.__str__(key)
    if key is None or isinstance(key, bool):  # bool has no subclasses: key is exact
        return key
    if isinstance(key, int):
        return int.__int__(key)
    if isinstance(key, float):
        return float.__float__(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _copy(value: Any, budget: _Budget) -> Any:
    # Each branch reads the value through the built-in type's method, never the script's.
    if value is None or isinstance(value, bool):  # bool has no subclasses
        budget.spend(4)
        return value
    if isinstance(value, str):
        budget.spend(str.__len__(value) + 2)
        return str.__str__(value)
    if isinstance(value, int):
        budget.spend(max(1, int.bit_length(value) // 4))  # a decimal digit holds < 4 bits
        return int.__int__(value)
    if isinstance(value, float):
        budget.spend(1)
        return float.__float__(value)
    if isinstance(value, dict):
        budget.spend(2)
        copied: dict[Any, Any] = {}
        for key, item in dict.items(value):
            plain_key = _key(key)
            budget.spend(2 + (len(plain_key) if isinstance(plain_key, str) else 1))
            copied[plain_key] = _copy(item, budget)
        return copied
    if isinstance(value, list | tuple):
        budget.spend(2)
        items = list.__iter__(value) if isinstance(value, list) else tuple.__iter__(value)
        copied_items = []
        for item in items:
            budget.spend(1)
            copied_items.append(_copy(item, budget))
        return copied_items
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def snapshot(value: Any, *, max_bytes: int) -> Any:
    """A plain copy of value (dict, list, str, int, float, bool, None only).

    Raises TooLarge past max_bytes, TypeError for a value JSON cannot hold and
    RecursionError for nesting deeper than the interpreter allows.
    """
    return _copy(value, _Budget(max_bytes))


def dumps(value: Any, *, max_bytes: int, allow_nan: bool = False) -> str:
    """Encode value as JSON of at most max_bytes (ASCII, so characters are bytes)."""
    text = json.dumps(snapshot(value, max_bytes=max_bytes), allow_nan=allow_nan)
    if len(text) > max_bytes:
        raise TooLarge(f"larger than {max_bytes} bytes")
    return text
