"""A script's store: small JSON values its runs keep between runs (flush, never commit).

The verbs behind a script's `store` (served per call by app.runner.store_calls) and the
API's view of it. Keyed by script: every run of the script, by any member and however it
started, reads and writes the same values. The limits below are the store's one owner.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.errors import NotFound, ValidationError
from app.models import Script, StoreEntry
from app.models._types import UNSTORABLE_TEXT, utcnow
from sandbox import size_in_words

MAX_KEY_CHARS = 200
MAX_VALUE_BYTES = 64 * 1024
MAX_KEYS = 100
# Lists and objects within each other: the API's answer (pydantic, spectree) cannot carry a
# value nested some 250 levels deep, which a script can build in 64 KiB (a 500 for the
# whole store, so its panel showed nothing). A store's values are records, not trees.
MAX_DEPTH = 100
SCRIPT_GONE = "this script was deleted: its store went with it"
# Browsers resolve these as a URL's path segments ("/store/.." is the script's own URL), so
# the Store panel's Delete of such a key went to another address.
_DOT_SEGMENTS = frozenset({".", ".."})


class StoreRefused(ValidationError):
    """A store call the store does not take: a bad key, a value too large or not JSON,
    one key too many, or a script that is gone. Its message says which, for the script."""


@dataclass(frozen=True)
class Entry:
    """One key of a script's store as the API shows it."""

    key: str
    value: Any
    size: int
    updated_at: datetime


def check_key(key: Any) -> str:
    """key, if a store may keep it: a non-empty string of at most MAX_KEY_CHARS
    characters that a database can store; else StoreRefused saying why."""
    if not isinstance(key, str):
        raise StoreRefused(f"a store key must be a string, not {type(key).__name__}")
    if not key:
        raise StoreRefused("a store key must not be empty")
    if len(key) > MAX_KEY_CHARS:
        raise StoreRefused(
            f"a store key may be at most {MAX_KEY_CHARS} characters; this one has {len(key)}"
        )
    if UNSTORABLE_TEXT.search(key):
        raise StoreRefused("a store key must not hold NUL or half of a surrogate pair")
    if key in _DOT_SEGMENTS:
        raise StoreRefused(
            f"a store key must not be {key!r}: the address of a key (the API's, the Store"
            " panel's Delete) cannot name it"
        )
    return key


def encode_value(value: Any) -> tuple[str, int]:
    """The value as stored (compact JSON, as written: what the limit counts, in UTF-8)
    and its size; StoreRefused for a value too large or not JSON."""
    try:
        readable = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise StoreRefused(
            "a stored value must be JSON: NaN and infinity are not (store them as text)"
        ) from None
    except (TypeError, RecursionError) as error:
        raise StoreRefused(f"a stored value must be JSON: {error}") from None
    try:
        # Stored as it is counted: escaped, non-ASCII text took up to three times the limit.
        size = len(readable.encode("utf-8"))
    except UnicodeEncodeError:
        raise StoreRefused(
            "a stored value's text must not hold half of a surrogate pair"
        ) from None
    if size > MAX_VALUE_BYTES:
        raise StoreRefused(
            f"a stored value may be at most {size_in_words(MAX_VALUE_BYTES)} of JSON; this"
            f" one is {size} bytes: keep a smaller value, or split it over several keys"
        )
    if _deeper_than(value, MAX_DEPTH):
        raise StoreRefused(
            f"a stored value may nest lists and objects at most {MAX_DEPTH} levels deep:"
            " keep a flatter value"
        )
    return readable, size


def _deeper_than(value: Any, limit: int) -> bool:
    # Walked with a stack, not recursion: the value may be nested past Python's own limit.
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if level >= limit:
                return True
            stack.extend((child, level + 1) for child in item)
    return False


def read_value(session: Session, *, script_id: int, key: Any) -> tuple[bool, Any]:
    """(True, value) for a key the script's store holds, else (False, None)."""
    text = session.scalar(
        select(StoreEntry.value).where(
            StoreEntry.script_id == script_id, StoreEntry.key == check_key(key)
        )
    )
    return (False, None) if text is None else (True, json.loads(text))


def keys(session: Session, *, script_id: int) -> list[str]:
    """The keys of the script's store, sorted."""
    query = select(StoreEntry.key).where(StoreEntry.script_id == script_id)
    return list(session.scalars(query.order_by(StoreEntry.key)))


def write_value(session: Session, *, script_id: int, key: Any, value: Any) -> None:
    """Keep value under key (last write wins); StoreRefused past a limit or for a script
    that was deleted. The caller commits, or rolls back on StoreRefused: the write is
    made before the key count is checked (so two writers cannot both pass a count)."""
    key = check_key(key)
    text, size = encode_value(value)
    # Writers of one script's store queue on its row (PostgreSQL: FOR NO KEY UPDATE, which
    # foreign key checks do not wait for); SQLite has one writer at a time anyway.
    found = session.scalar(
        select(Script.id).where(Script.id == script_id).with_for_update(key_share=True)
    )
    if found is None:
        raise StoreRefused(SCRIPT_GONE)
    row = {"script_id": script_id, "key": key, "value": text, "size": size,
           "updated_at": utcnow()}
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    upsert = dialect.insert(StoreEntry).values(row)
    session.execute(upsert.on_conflict_do_update(
        index_elements=[StoreEntry.script_id, StoreEntry.key],
        set_={name: upsert.excluded[name] for name in ("value", "size", "updated_at")},
    ))
    count = session.scalar(
        select(func.count()).select_from(StoreEntry).where(StoreEntry.script_id == script_id)
    )
    if count is not None and count > MAX_KEYS:
        raise StoreRefused(
            f"a script's store keeps at most {MAX_KEYS} keys: delete one (store.delete) "
            "before adding another, or keep related values under one key"
        )


def delete_value(session: Session, *, script_id: int, key: Any) -> bool:
    """Forget key; whether the store held it."""
    gone = session.execute(
        delete(StoreEntry).where(
            StoreEntry.script_id == script_id, StoreEntry.key == check_key(key)
        )
    )
    return bool(gone.rowcount)  # type: ignore[attr-defined]  # a DML result's rowcount


def entries(session: Session, *, script: Script) -> list[Entry]:
    """Every key of the script's store with its value, size and last write, by key."""
    query = select(StoreEntry).where(StoreEntry.script_id == script.id)
    return [
        Entry(row.key, json.loads(row.value), row.size, row.updated_at)
        for row in session.scalars(query.order_by(StoreEntry.key))
    ]


def forget(session: Session, *, script: Script, key: str) -> None:
    """Delete one key of the script's store (the API's); NotFound when it holds none."""
    if len(key) > MAX_KEY_CHARS or not delete_value(session, script_id=script.id, key=key):
        raise NotFound("this script's store holds no such key")


def clear(session: Session, *, script: Script) -> int:
    """Empty the script's store; how many keys it held."""
    gone = session.execute(delete(StoreEntry).where(StoreEntry.script_id == script.id))
    return int(gone.rowcount)  # type: ignore[attr-defined]  # a DML result's rowcount
