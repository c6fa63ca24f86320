"""The monthly call quota counted in Redis, shared by every process (implements CallCounter).

One counter per facility and month: the calls in the call log plus the calls in flight
on any process. It is filled from the call log the first time it is needed (and again
after a Redis restart lost it), then every call adds one, atomically, before it is
made; a call refused by the quota still counts (its row is logged like any other).
Two processes can therefore never both take the last call of a quota.

Filling from the call log misses the rows other processes have not written yet (their
writer batches for ~50 ms) and the calls they have in flight: right after Redis lost the
counter, a quota may be passed by those few calls. Nothing else drifts: a process that
dies mid-call leaves its call counted, as if made.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import redis
from sqlalchemy.orm import Session

from app.integrations.quota import calls_this_month

_TTL_S = 40 * 24 * 3600  # a month's counter outlives the month, then goes

# Add one if the counter exists; nil when it does not (the caller fills it).
_ADD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end
return nil
"""
# Fill the counter from the call log unless another process did, then add one.
_FILL_AND_ADD = """
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
return redis.call('INCRBY', KEYS[1], ARGV[3])
"""


class RedisCallCounter:
    """Counts each facility's calls this month in Redis (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        session_factory: Callable[[], Session],
        *,
        prefix: str = "scriptbox",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._session_factory = session_factory
        self._prefix = prefix
        self._clock = clock
        self._add = client.register_script(_ADD)
        self._fill_and_add = client.register_script(_FILL_AND_ADD)

    def admit(self, facility_id: int, quota: int) -> bool:
        """Count the call; True when the count, this call included, is within the quota."""
        key = self._key(facility_id)
        count = self._add(keys=[key], args=[1])
        if count is None:
            with self._session_factory() as session:
                logged = calls_this_month(session, facility_id)
            count = self._fill_and_add(keys=[key], args=[logged, _TTL_S, 1])
        return int(count) <= quota

    def settle(self, facility_id: int, *, admitted: bool | None, logged: bool) -> None:
        """Keep the counter equal to the call log plus the calls in flight."""
        if admitted is not None and not logged:
            self._add(keys=[self._key(facility_id)], args=[-1])  # counted, never logged
        elif admitted is None and logged:
            self._add(keys=[self._key(facility_id)], args=[1])  # logged, never counted

    def _key(self, facility_id: int) -> str:
        return f"{self._prefix}:calls:{facility_id}:{self._clock():%Y-%m}"
