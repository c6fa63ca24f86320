"""Concurrency caps: how many live runs (running or waiting) one user and one facility
may have at once, and how a claim counts them (DESIGN §7).

A claim counts in the same statement that moves the run, so no process takes a slot it
did not see free. Claims that race across processes (Celery workers) also lock the run's
user and facility rows first; on PostgreSQL the locks and the counts are one function
call inside the claim's UPDATE (migration 0013).
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, ColumnElement, bindparam, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from app.lifecycle import LIVE, RUNS, statuses
from app.models import Facility, Run, User


@dataclass(frozen=True)
class Caps:
    """How many live runs (running or waiting) one user and one facility may have at once."""

    per_user: int
    per_facility: int


def live_counts(
    session: Session, users: set[int], facilities: set[int]
) -> tuple[Counter[int], Counter[int]]:
    """Live runs (running or waiting) per user and per facility: what the caps count."""
    if not users and not facilities:
        return Counter(), Counter()
    live = statuses(LIVE)
    by_user = session.execute(
        select(Run.user_id, func.count(Run.id))
        .where(Run.status.in_(live), Run.user_id.in_(users))
        .group_by(Run.user_id)
    ).all()
    by_facility = session.execute(
        select(Run.facility_id, func.count(Run.id))
        .where(Run.status.in_(live), Run.facility_id.in_(facilities))
        .group_by(Run.facility_id)
    ).all()
    return (
        Counter({user: count for user, count in by_user}),
        Counter({facility: count for facility, count in by_facility}),
    )


@functools.cache
def under_caps(caps: Caps) -> tuple[ColumnElement[bool], ...]:
    """WHERE conditions of a claim's UPDATE: the run's user and facility each have fewer
    live runs than their cap (counted in the same statement that moves the run).

    Built once per caps (the expressions are immutable): building them took longer
    than the claim's SQL itself (cProfile, bench/roundtrips.py --profile)."""
    other = RUNS.alias("other")

    def count(column: Any, own: Any) -> ColumnElement[int]:
        return (
            select(func.count(other.c.id))
            .where(column == own, other.c.status.in_(statuses(LIVE)))
            .scalar_subquery()
        )

    return (
        count(other.c.user_id, RUNS.c.user_id) < caps.per_user,
        count(other.c.facility_id, RUNS.c.facility_id) < caps.per_facility,
    )


# A claim's row locks on the run's user and facility (built once, bound per claim).
# NO KEY UPDATE: claims exclude each other, but a web process inserting a run (its
# foreign keys take KEY SHARE on these rows) is not blocked, which deadlocked against a
# claim holding the user and waiting for the facility.
LOCK_USER_AND_FACILITY = (
    select(User.id, Facility.id)
    .join(Run, Run.user_id == User.id)
    .join(Facility, Facility.id == Run.facility_id)
    .where(Run.id == bindparam("run_id"))
    .with_for_update(of=[User, Facility], key_share=True)
)


@functools.cache
def claim_room(caps: Caps) -> tuple[ColumnElement[bool], ...]:
    """PostgreSQL: the WHERE condition of a claim that takes its row locks and counts the
    caps itself (migration 0013's function), so the claim is one statement."""
    live = postgresql.array(statuses(LIVE))
    room = func.scriptbox_claim_room(
        RUNS.c.user_id,
        RUNS.c.facility_id,
        live,
        caps.per_user,
        caps.per_facility,
        type_=Boolean,
    )
    return (room,)
