"""How many integration calls a facility made this month (the broker's quota check)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import CallLog


def month_start(now: datetime | None = None) -> datetime:
    """The first instant of the current month, UTC."""
    now = now or datetime.now(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def calls_this_month(session: Session, facility_id: int) -> int:
    """How many calls the facility made this month."""
    return int(
        session.scalar(
            select(func.count(CallLog.id)).where(
                CallLog.facility_id == facility_id, CallLog.created_at >= month_start()
            )
        )
        or 0
    )
