"""The monthly call quota counted in Redis, shared by every process (implements CallCounter).

One counter per facility and month: the calls in the call log that count as usage
(`counts_as_usage`) plus the calls in flight on any process. It is filled from the call
log the first time it is needed (and again after a Redis restart lost it), then every
call adds one, atomically, before it is made; a call that ends without counting (refused
by the quota or anything else before it went out, or parked) gives its one back. Two
processes can therefore never both take the last call of a quota.

Filling from the call log misses the rows other processes have not written yet (their
writer batches for ~50 ms) and the calls they have in flight: right after Redis lost the
counter, a quota may be passed by those few calls. Nothing else drifts: a process that
dies mid-call leaves its call counted, as if made. While Redis is unreachable, each
process counts its own calls (as the embedded default does).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import redis
from sqlalchemy.orm import Session

from app.integrations.quota import Admission, CallCounter, calls_this_month

log = logging.getLogger(__name__)
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
        local: CallCounter,
        prefix: str = "scriptbox",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._session_factory = session_factory
        self._local = local  # this process's own count, while Redis is unreachable
        self._prefix = prefix
        self._clock = clock
        self._add = client.register_script(_ADD)
        self._fill_and_add = client.register_script(_FILL_AND_ADD)

    def admit(self, facility_id: int, quota: int) -> Admission:
        """Count the call; allowed when the count, this call included, is within the quota."""
        key = self._key(facility_id)
        try:
            count = self._add(keys=[key], args=[1])
            if count is None:
                with self._session_factory() as session:
                    logged = calls_this_month(session, facility_id)
                count = self._fill_and_add(keys=[key], args=[logged, _TTL_S, 1])
        except redis.RedisError:
            log.warning("Redis is unreachable: facility %s's quota is counted in this "
                        "process only", facility_id)
            return self._local.admit(facility_id, quota)
        return _Counted(self, key, allowed=int(count) <= quota)

    def unchecked(self, facility_id: int) -> None:
        """Count a call that was made without a check (if the counter exists)."""
        self.change(self._key(facility_id), 1)

    def change(self, key: str, by: int) -> None:
        """Move a counter that exists (a missing one is filled from the call log later)."""
        try:
            self._add(keys=[key], args=[by])
        except redis.RedisError:
            log.warning("Redis is unreachable: %s is off by %+d until filled again", key, by)

    def _key(self, facility_id: int) -> str:
        return f"{self._prefix}:calls:{facility_id}:{self._clock():%Y-%m}"


class _Counted:
    """A call counted in Redis: given back unless it ends counting as usage."""

    def __init__(self, counter: RedisCallCounter, key: str, *, allowed: bool) -> None:
        self._counter, self._key, self.allowed = counter, key, allowed

    def settle(self, *, counted: bool) -> None:
        """A call whose run parked is counted again when it is asked again; one refused
        (by the quota too) is not counted at all."""
        if not counted:
            self._counter.change(self._key, -1)
