"""Whose beat sweeps (one process of the cluster per beat, not every process each beat),
and when the database was last out of reach for any of them.

The sweep (DESIGN §4: dead drivers' runs, overdue and unwatched prompts, parked runs to
resume, queued runs and webhook retries to send) covers the whole database, so one
process doing it each beat is enough; with every web process and every forked Celery
child sweeping, the cluster swept as many times per beat as it had processes, each a
handful of queries. The first process to ask in a beat takes a Redis key that lapses a
little before the next beat; whoever asks first after that sweeps next, so a process that
died hands the turn on by itself.

While Redis is unreachable every process sweeps (a sweep is safe to repeat; skipping one
is not).
"""

from __future__ import annotations

import contextlib

import redis

# The key lapses this share of a beat after it was taken: before the taker's own next
# beat, so the turn goes round instead of staying with one process by timing luck.
_LAPSE_SHARE = 0.9


class SweepTurns:
    """The heartbeat's `turn`: calling it answers True when this process's beat sweeps."""

    def __init__(self, client: redis.Redis, *, prefix: str, interval_s: float) -> None:
        self._client = client
        self._key = f"{prefix}:sweep-turn"
        self._lapse_ms = max(1, int(interval_s * 1000 * _LAPSE_SHARE))

    def __call__(self) -> bool:
        try:
            return bool(self._client.set(self._key, b"1", nx=True, px=self._lapse_ms))
        except redis.RedisError:
            return True


class Outages:
    """The cluster's memory of the database's outages (app.runner.heartbeat.Outages).

    While the database cannot be reached no process can renew its runs; once it answers,
    whichever process sweeps first must not take those runs for dead before their own
    drivers had a beat. The sweeper may not have tried the database during the outage
    (a web process with no run of its own), so whoever found it out of reach says so
    here, on a key that lapses `hold_s` after the last of them said it.
    """

    def __init__(self, client: redis.Redis, *, prefix: str) -> None:
        self._client = client
        self._key = f"{prefix}:database-unreachable"

    def note(self, hold_s: float) -> None:
        with contextlib.suppress(redis.RedisError):  # each process remembers its own too
            self._client.set(self._key, b"1", px=max(1, int(hold_s * 1000)))

    def recent(self) -> bool:
        try:
            return bool(self._client.exists(self._key))
        except redis.RedisError:
            return False  # as without Redis: each process by what it saw itself
