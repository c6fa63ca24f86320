"""Usage: integration calls per facility, integration and month, from the call log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.integrations.quota import calls_this_month, month_start
from app.models import CallLog, Facility

__all__ = ["calls_this_month", "month_start", "monthly_usage"]


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
