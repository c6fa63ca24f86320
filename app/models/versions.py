"""Saved versions of a script: every save keeps one, and publishing picks one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models._types import UTCDateTime, utcnow


class ScriptVersion(Base):
    """One saved state of a script's source and input declaration, numbered from 1."""

    __tablename__ = "script_versions"
    __table_args__ = (UniqueConstraint("script_id", "number", name="uq_script_versions_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    script_id: Mapped[int] = mapped_column(
        ForeignKey("scripts.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int]
    source: Mapped[str] = mapped_column(Text, default="")
    input_schema: Mapped[Any] = mapped_column(JSON, default=dict)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
