"""Idempotency-Key for POST /runs: a retried request gets the run it started, not another.

A key belongs to one user in one facility and to the request it first came with: the same
key with a different request is a conflict, never a silent reuse. As Stripe's, a key is
remembered for its retention window, not only as long as its run: once the run has been
deleted, a retry under its key is a 410 saying so (the client learns the job ran, and
does not run it twice), until the key is older than SCRIPTBOX_RETENTION_DAYS.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict, IdempotencyKeyRunDeleted
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
    """The run this key started before, or None; a different request under it is a 409,
    the same one after its run was deleted a 410 (IdempotencyKeyRunDeleted)."""
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
    run = session.get(Run, row.run_id) if row.run_id is not None else None
    if run is None:
        raise IdempotencyKeyRunDeleted(
            f"the run this {HEADER} started was deleted, so repeating the request starts"
            f" nothing; to run it again, send it with a new {HEADER}",
            field=HEADER,
        )
    return run


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
