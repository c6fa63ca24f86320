"""How many integration calls a facility made this month (the broker's quota check).

The count is the call log: every call that reaches the log counts, refused ones too.
A `CallCounter` decides whether one more call fits under the quota; each process counts
its own calls in flight, so the embedded default (one process) never goes past it. With
Redis (`app.distributed.redis_quota`) every process shares one count per facility.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import CallLog


def month_start(now: datetime | None = None) -> datetime:
    """The first instant of the current month, UTC."""
    now = now or datetime.now(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def calls_this_month(session: Session, facility_id: int) -> int:
    """How many calls the facility made this month (rows in the call log)."""
    return int(
        session.scalar(
            select(func.count(CallLog.id)).where(
                CallLog.facility_id == facility_id, CallLog.created_at >= month_start()
            )
        )
        or 0
    )


class Admission(Protocol):
    """One call's place in the count: whether it may be made, and its end."""

    allowed: bool

    def settle(self, *, logged: bool) -> None:
        """The call ended: its row went to the call log (`logged`), or not (its run
        parked: the call is asked again, and counted again, when the run resumes)."""


class CallCounter(Protocol):
    """Counts a facility's calls this month against its quota, across the calls in flight."""

    def admit(self, facility_id: int, quota: int) -> Admission:
        """One call is about to be made. It counts from now on, refused or not (a refused
        call is logged too), until its admission is settled."""

    def unchecked(self, facility_id: int) -> None:
        """A call that never reached the quota check was logged (it failed before)."""


class _Settled:
    """An admission with nothing to give back."""

    def __init__(self, allowed: bool) -> None:
        self.allowed = allowed

    def settle(self, *, logged: bool) -> None:
        """Nothing to do."""


class _InFlight:
    """An allowed call of a LocalCallCounter: in flight until settled."""

    allowed = True

    def __init__(self, counter: LocalCallCounter, facility_id: int) -> None:
        self._counter, self._facility_id = counter, facility_id

    def settle(self, *, logged: bool) -> None:
        """No longer in flight (called after its row was handed to the writer)."""
        self._counter.landed(self._facility_id)


class LocalCallCounter:
    """This process's count: the call log, rows not yet written, and calls in flight."""

    def __init__(
        self, session_factory: Callable[[], Session], pending: Callable[[int], int]
    ) -> None:
        self._session_factory = session_factory
        self._pending = pending  # rows handed to the call-log writer, not yet committed
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
