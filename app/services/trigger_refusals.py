"""A trace of the calls a webhook trigger's URL refused: the last one's time, HTTP status
and error code, and how many in all, kept on the trigger (flush, never commit).

A sender that fails (a wrong secret, a body of the wrong type, a paused trigger) shows
its maker nothing but its own delivery log, if it has one: the Triggers panel says
"last refused 3 min ago: signature_invalid". One UPDATE a refusal, by the token's hash,
so a call at an unknown token records nothing (it matches no row), and no body, header
or message of the caller's is kept. Whoever holds a URL may flood it: past WRITES_PER_S
refusals a second, a process counts them (RefusalTally) and adds them with the next one
it writes, so a flood of 429s costs the database a few writes a second, not one each.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.models import WebhookTrigger
from app.models._types import utcnow

# The answers that are a refusal worth telling the maker: a body it could not take (400,
# 413, 415), a signature (401), paused or stopped (409), a deleted run's redelivery (410)
# and too many calls or queued runs (429). Not 404 (no such trigger: nothing to record
# on) nor 405 (a GET, say a person opening the URL), nor a 5xx (the server's fault,
# logged as such).
RECORDED = frozenset({400, 401, 409, 410, 413, 415, 429})
MAX_CODE = 64  # the column's width
# Refusals of one trigger's URL written a second, per process; the rest wait in the tally.
WRITES_PER_S = 10
# Triggers the tally follows at once: past it, it forgets those written over a second ago.
MAX_TRACKED = 10_000


class RefusalTally:
    """Which refusals to write: at most WRITES_PER_S of a trigger's in any second, each
    carrying those counted since the last written (a flood of refusals, say 429s)."""

    def __init__(
        self, per_second: int = WRITES_PER_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._per_second = per_second
        self._clock = clock
        self._lock = threading.Lock()
        self._written: dict[str, collections.deque[float]] = {}
        self._waiting: dict[str, int] = {}

    def take(self, token_hash: str) -> int:
        """How many refusals to add with this one's write (itself and those counted
        since the last), or 0: not now, it is counted for the next."""
        now = self._clock()
        with self._lock:
            written = self._written.get(token_hash)
            if written is None:
                if len(self._written) >= MAX_TRACKED:
                    self._forget(now)
                written = self._written[token_hash] = collections.deque(
                    maxlen=self._per_second)
            if len(written) == written.maxlen and now - written[0] < 1.0:
                self._waiting[token_hash] = self._waiting.get(token_hash, 0) + 1
                return 0
            written.append(now)
            return self._waiting.pop(token_hash, 0) + 1

    def _forget(self, now: float) -> None:
        for token_hash, written in list(self._written.items()):
            if now - written[-1] >= 1.0:
                del self._written[token_hash]
                self._waiting.pop(token_hash, None)
        if len(self._written) >= MAX_TRACKED:  # a flood of that many URLs: start afresh
            self._written.clear()
            self._waiting.clear()


def record(
    session: Session,
    *,
    token_hash: str,
    status: int,
    code: str,
    count: int = 1,
    now: datetime | None = None,
) -> None:
    """Record a refused call on the trigger whose token has this hash (none: nothing),
    and `count` refusals in all since the last recorded (RefusalTally)."""
    session.execute(
        update(WebhookTrigger)
        .where(WebhookTrigger.token_hash == token_hash)
        .values(
            last_refused_at=now or utcnow(),
            last_refused_status=status,
            last_refused_code=code[:MAX_CODE],
            refused_count=WebhookTrigger.refused_count + count,
        )
        .execution_options(synchronize_session=False)
    )
