"""A trace of the calls a webhook trigger's URL refused: the last one's time, HTTP status
and error code, and how many in all, kept on the trigger (flush, never commit).

A sender that fails (a wrong secret, a body of the wrong type, a paused trigger) shows
its maker nothing but its own delivery log, if it has one: the Triggers panel says
"last refused 3 min ago: signature_invalid". One UPDATE a refusal, by the token's hash,
so a call at an unknown token records nothing (it matches no row), and no body, header
or message of the caller's is kept.
"""

from __future__ import annotations

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


def record(
    session: Session, *, token_hash: str, status: int, code: str, now: datetime | None = None
) -> None:
    """Record a refused call on the trigger whose token has this hash (none: nothing)."""
    session.execute(
        update(WebhookTrigger)
        .where(WebhookTrigger.token_hash == token_hash)
        .values(
            last_refused_at=now or utcnow(),
            last_refused_status=status,
            last_refused_code=code[:MAX_CODE],
            refused_count=WebhookTrigger.refused_count + 1,
        )
        .execution_options(synchronize_session=False)
    )
