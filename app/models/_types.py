"""Column helpers shared by the models."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import DateTime, TypeDecorator
from sqlalchemy.engine import Dialect


def utcnow() -> datetime:
    """Timezone-aware now, in UTC."""
    return datetime.now(UTC)


def iso(value: date | None) -> str | None:
    """A date or time as the API writes it (ISO 8601), or None."""
    return value.isoformat() if value is not None else None


# Characters no text column can hold: NUL (PostgreSQL refuses it) and lone surrogates
# (half of a UTF-16 pair, no character at all: no UTF-8 encoder writes one).
UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any) -> Any:
    """`value` with every unstorable character in its text (nested in lists and dicts, and
    their keys, too) made U+FFFD: PostgreSQL refuses NUL in text and a lone surrogate in
    JSON, and what a script printed, returned or raised must be kept all the same."""
    if isinstance(value, str):
        return UNSTORABLE_TEXT.sub("\ufffd", value)
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    return value


def new_id() -> str:
    """A random public identifier."""
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and always returns them aware (SQLite drops tzinfo)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
