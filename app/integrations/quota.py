"""How many integration calls a facility made this month (the broker's quota check).

The count is the calls sent to a service (`counts_as_usage`), read from the call log: a
call refused before it went out (by the quota itself, an unknown key, a forbidden
destination, a missing sign-in...) and an `integrations.require` that waited for a
sign-in are logged but not counted. A `CallCounter` decides
whether one more call fits under the quota; each process counts its own calls in flight,
so the embedded default (one process) never goes past it. With Redis
(`app.distributed.redis_quota`) every process shares one count per facility.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from app.models import CallLog


def month_start(now: datetime | None = None) -> datetime:
    """The first instant of the current month, UTC."""
    now = now or datetime.now(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


# The failures of a call that was sent (or being sent) when it failed: no answer in time,
# the connection or the answer broke off. Both codes are also raised before sending (an
# integration switched off, a run with no time left, a token refresh that failed): those
# before the integration is known (switched off) log no integration_id and are not
# counted; the others are, a rare overcount that keeps the rule readable from the call
# log alone (an answered call always has an integration_id and a status).
SENT_FAILURES = frozenset({"integration_timeout", "integration_unavailable"})

# The method of an `integrations.require` row: it asked a person to sign in (or was
# refused) and sent nothing, whatever its error. Lowercase, as no request's method is.
REQUIRE = "require"


def counts_as_usage(row: dict[str, Any]) -> bool:
    """Whether a call-log row (CallLogEntry.row) counts toward usage and the quota: the
    call got an HTTP answer (any status, a 429 too) or failed in transit; never a
    `require` row. `COUNTED` says the same in SQL; keep the two together."""
    return row["method"] != REQUIRE and (
        row["status"] is not None
        or (row["integration_id"] is not None and row["error_code"] in SENT_FAILURES)
    )


# counts_as_usage as a WHERE clause over the call log.
COUNTED: ColumnElement[bool] = and_(
    CallLog.method != REQUIRE,
    or_(
        CallLog.status.is_not(None),
        and_(CallLog.integration_id.is_not(None), CallLog.error_code.in_(sorted(SENT_FAILURES))),
    ),
)


def calls_this_month(session: Session, facility_id: int) -> int:
    """How many calls the facility made this month (call-log rows that count as usage)."""
    return int(
        session.scalar(
            select(func.count(CallLog.id)).where(
                CallLog.facility_id == facility_id, CallLog.created_at >= month_start(), COUNTED
            )
        )
        or 0
    )


class Admission(Protocol):
    """One call's place in the count: whether it may be made, and its end."""

    allowed: bool

    def settle(self, *, counted: bool) -> None:
        """The call ended: it counts as usage (`counted`: its row went to the call-log
        writer, which counts it until written), or not (refused before it went out, by the
        quota too, or its run parked: the call is asked again when the run resumes)."""


class CallCounter(Protocol):
    """Counts a facility's calls this month against its quota, across the calls in flight."""

    def admit(self, facility_id: int, quota: int) -> Admission:
        """One call is about to be made. It may count from now on, until its admission is
        settled."""

    def unchecked(self, facility_id: int) -> None:
        """A call that counts as usage was logged without a quota check (no quota)."""


class _Settled:
    """An admission with nothing to give back."""

    def __init__(self, allowed: bool) -> None:
        self.allowed = allowed

    def settle(self, *, counted: bool) -> None:
        """Nothing to do."""


class _InFlight:
    """An allowed call of a LocalCallCounter: in flight until settled."""

    allowed = True

    def __init__(self, counter: LocalCallCounter, facility_id: int) -> None:
        self._counter, self._facility_id = counter, facility_id

    def settle(self, *, counted: bool) -> None:
        """No longer in flight (called after its row was handed to the writer, whose
        pending count holds it if `counted`)."""
        self._counter.landed(self._facility_id)


class LocalCallCounter:
    """This process's count: the call log, rows not yet written, and calls in flight."""

    def __init__(
        self, session_factory: Callable[[], Session], pending: Callable[[int], int]
    ) -> None:
        self._session_factory = session_factory
        # Rows handed to the call-log writer, not yet committed, that count as usage.
        self._pending = pending
        self._lock = threading.Lock()
        self._in_flight: collections.Counter[int] = collections.Counter()

    def admit(self, facility_id: int, quota: int) -> Admission:
        """See CallCounter."""
        with self._session_factory() as session:
            made = calls_this_month(session, facility_id)
        with self._lock:
            if made + self._pending(facility_id) + self._in_flight[facility_id] >= quota:
                return _Settled(False)
            self._in_flight[facility_id] += 1
        return _InFlight(self, facility_id)

    def unchecked(self, facility_id: int) -> None:
        """See CallCounter (the call log counts it)."""

    def landed(self, facility_id: int) -> None:
        """An admitted call is no longer in flight."""
        with self._lock:
            self._in_flight[facility_id] -= 1
