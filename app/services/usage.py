"""Usage: integration calls per facility, integration and month, from the call log (the calls
sent to a service, `counts_as_usage`: not those refused before they went out), and the
facility's monthly call quota (the one setting the broker enforces, app.integrations.quota).
Flush, never commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import ValidationError
from app.integrations.quota import COUNTED, calls_this_month, month_start
from app.models import CallLog, Facility

__all__ = [
    "MAX_MONTHS",
    "MAX_QUOTA",
    "calls_this_month",
    "month_start",
    "monthly_usage",
    "oldest_month",
    "set_quota",
    "usage_by_month",
]

MAX_MONTHS = 24
MAX_QUOTA = 1_000_000_000


def _months_before(start: datetime, count: int) -> datetime:
    """The first instant of the month `count` months before `start` (a month start)."""
    index = start.year * 12 + start.month - 1 - count
    return start.replace(year=index // 12, month=index % 12 + 1)


def oldest_month(now: datetime | None = None) -> datetime:
    """The first instant of the oldest month a usage report can show (MAX_MONTHS months
    ending with this one): the call log before it is read by no report."""
    return _months_before(month_start(now), MAX_MONTHS - 1)


def _calls_between(
    session: Session, facility: Facility, start: datetime, end: datetime | None
) -> dict[str, int]:
    query = select(CallLog.integration_key, func.count(CallLog.id)).where(
        CallLog.facility_id == facility.id, CallLog.created_at >= start, COUNTED
    )
    if end is not None:
        query = query.where(CallLog.created_at < end)
    query = query.group_by(CallLog.integration_key).order_by(CallLog.integration_key)
    return {key: int(count) for key, count in session.execute(query)}


def monthly_usage(session: Session, facility: Facility) -> dict[str, Any]:
    """Calls per integration this month, the total and the quota."""
    per_integration = _calls_between(session, facility, month_start(), None)
    return {
        "month": month_start().strftime("%Y-%m"),
        "calls": per_integration,
        "total": sum(per_integration.values()),
        "quota": facility.monthly_call_quota,
    }


def usage_by_month(
    session: Session, facility: Facility, *, months: int = 6, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Calls per integration for each of the last `months` months, oldest first (one query
    per month, each on the call log's facility-and-time index)."""
    current = month_start(now)
    result = []
    for back in range(months - 1, -1, -1):
        start = _months_before(current, back)
        end = _months_before(current, back - 1) if back else None
        calls = _calls_between(session, facility, start, end)
        result.append(
            {"month": start.strftime("%Y-%m"), "calls": calls, "total": sum(calls.values())}
        )
    return result


def set_quota(session: Session, facility: Facility, quota: Any) -> int | None:
    """Set (a whole number of calls) or clear (None) the facility's monthly call quota."""
    if quota is not None and (
        isinstance(quota, bool) or not isinstance(quota, int) or not 1 <= quota <= MAX_QUOTA
    ):
        raise ValidationError(
            f"the quota must be a whole number of calls from 1 to {MAX_QUOTA:,}, "
            "or empty for no quota",
            field="quota",
        )
    facility.monthly_call_quota = quota
    session.flush()
    return quota
