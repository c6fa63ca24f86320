"""Usage: integration calls per facility, integration and month, from the call log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import CallLog, Facility


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


def monthly_usage(session: Session, facility: Facility) -> dict[str, Any]:
    """Calls per integration this month, the total and the quota."""
    rows = session.execute(
        select(CallLog.integration_key, func.count(CallLog.id))
        .where(CallLog.facility_id == facility.id, CallLog.created_at >= month_start())
        .group_by(CallLog.integration_key)
        .order_by(CallLog.integration_key)
    ).all()
    per_integration = {key: int(count) for key, count in rows}
    return {
        "month": month_start().strftime("%Y-%m"),
        "calls": per_integration,
        "total": sum(per_integration.values()),
        "quota": facility.monthly_call_quota,
    }
