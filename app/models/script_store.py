"""A script's store: small JSON values its runs keep between runs (`store` in a script)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models._types import UTCDateTime, utcnow


class StoreEntry(Base):
    """One key of a script's store and its value, as JSON text.

    Keyed by the script alone: every member's run of it, in every way it starts, sees the
    same values. Deleting the script deletes its store (ON DELETE CASCADE).
    """

    __tablename__ = "script_store"

    script_id: Mapped[int] = mapped_column(
        ForeignKey("scripts.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    # Compact JSON as written (text with half a surrogate pair is refused); `size` is its
    # length in UTF-8, what the limit counts and the API shows.
    value: Mapped[str] = mapped_column(Text)
    size: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
