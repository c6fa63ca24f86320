"""Cursor pagination for list answers: the body stays a JSON array, and the next page's
cursor travels in the `Next-Cursor` header (and a `Link: rel="next"` for generic clients).

A cursor is opaque to clients: the position after the last row of a page (its sort key),
so pages do not skip or repeat rows when new ones arrive, as offsets would.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from flask import request
from pydantic import Field, WithJsonSchema

from app.db import MAX_INTEGER
from app.errors import ValidationError
from app.models._types import UNSTORABLE_TEXT
from app.services.scripts import MAX_PAGE
from app.web.api.base import public_address
from app.web.openapi import Query, QueryInt
from app.web.openapi_answers import NEXT_HEADER

T = TypeVar("T")


DEFAULT_PAGE = 50

# What the document says `limit` takes. Only the document: page_limit refuses the rest in
# its own words (a bound in the schema would answer in pydantic's, before it).
PageSize = Annotated[
    QueryInt,
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": MAX_PAGE}),
]


class Page(Query):
    """Page size (1..200, default 50) and the cursor from the previous page's Next-Cursor."""

    limit: PageSize | None = Field(
        default=None,  # page_limit's DEFAULT_PAGE, which the document shows
        description=f"Rows per page, 1 to {MAX_PAGE} (default {DEFAULT_PAGE})",
        json_schema_extra={"default": DEFAULT_PAGE},
    )
    cursor: str | None = Field(
        default=None,
        max_length=200,
        description="The previous page's Next-Cursor; none for the first page",
    )


def page_limit(limit: int | None) -> int:
    """The page size asked for (absent: 50); outside 1..MAX_PAGE a 400 naming `limit`.

    Every list reads its `limit` through here (runs' and the call log's own query models
    too), so each refuses the same values in the same words rather than clamping them.
    """
    if limit is None:
        return DEFAULT_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(
            f"limit must be a whole number from 1 to {MAX_PAGE} (rows per page)", field="limit"
        )
    return limit


def encode(position: list[Any]) -> str:
    """An opaque cursor for the position after a row."""
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str | None, *, kinds: tuple[type, ...]) -> list[Any] | None:
    """The position a cursor stands for (None without one); anything else is a 400."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except ValueError:
        position = None
    if (
        not isinstance(position, list)
        or len(position) != len(kinds)
        or not all(_fits(v, k) for v, k in zip(position, kinds, strict=True))
    ):
        raise _not_a_cursor()
    return position


def _fits(value: Any, kind: type) -> bool:
    # What a cursor holds goes into a query: a number the database can compare with and
    # text it can hold (no NUL, no lone surrogate), as every cursor given out has.
    if not isinstance(value, kind) or isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) <= MAX_INTEGER
    if isinstance(value, str):
        return UNSTORABLE_TEXT.search(value) is None
    return True


def _not_a_cursor() -> ValidationError:
    return ValidationError(
        "cursor is not a cursor this list gave out; send the Next-Cursor of the previous"
        " page, or no cursor for the first page",
        field="cursor",
    )


def instant(value: str) -> datetime:
    """The time inside a cursor position, in UTC; anything else is a 400."""
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:  # every cursor given out names its offset
            raise ValueError(value)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # not a time, or one beyond what UTC can hold
        raise _not_a_cursor() from None


def page_of(
    rows: Sequence[T], page: Page, *, key: Callable[[T], list[Any]], kinds: tuple[type, ...]
) -> tuple[list[T], list[Any] | None]:
    """One page of a short list read whole (a facility's scripts, members...): rows in
    `key` order after the cursor's position, and the next page's position (None: last)."""
    position = decode(page.cursor, kinds=kinds)
    ordered = sorted(rows, key=key)
    if position is not None:
        ordered = [row for row in ordered if key(row) > position]
    limit = page_limit(page.limit)
    return ordered[:limit], (key(ordered[limit - 1]) if len(ordered) > limit else None)


def with_next(
    rows: list[Any], next_position: list[Any] | None
) -> tuple[list[Any], int, dict[str, str]]:
    """The answer for one page: the rows, 200, and the next-page headers when there is one."""
    if next_position is None:
        return rows, 200, {}
    cursor = encode(next_position)
    query = {**request.args.to_dict(), "cursor": cursor}
    link = f'<{public_address(request.path)}?{urlencode(query)}>; rel="next"'
    return rows, 200, {NEXT_HEADER: cursor, "Link": link}
