"""Idempotency-Key for POST /runs: a retried request gets the run it started, not another.

A key belongs to one user in one facility and to the request it first came with: the same
key with a different request is a conflict, never a silent reuse.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict
from app.models import IdempotencyKey, Run
from app.services.context import MemberContext

# The longest key accepted (Stripe's limit is 255; ours fits the column).
MAX_KEY_LENGTH = 200
HEADER = "Idempotency-Key"


def request_hash(body: Any) -> str:
    """A fingerprint of the request a key was used with."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def earlier_run(
    session: Session, *, member: MemberContext, key: str, fingerprint: str
) -> Run | None:
    """The run this key started before, or None; a different request under it is a 409."""
    row = session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.user_id == member.user.id,
            IdempotencyKey.facility_id == member.facility.id,
            IdempotencyKey.key == key,
        )
    )
    if row is None:
        return None
    if row.request_hash != fingerprint:
        raise Conflict(f"this {HEADER} was already used with a different request", field=HEADER)
    return session.get(Run, row.run_id)


def remember(
    session: Session, *, member: MemberContext, key: str, fingerprint: str, run: Run
) -> None:
    """Record that `key` started `run` (flushed with the run, so both or neither exist)."""
    session.add(
        IdempotencyKey(
            user_id=member.user.id,
            facility_id=member.facility.id,
            key=key,
            request_hash=fingerprint,
            run_id=run.id,
        )
    )
    session.flush()
