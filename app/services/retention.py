"""Retention: what is old enough is deleted, so the database grows with use, not with time.

After `SCRIPTBOX_RETENTION_DAYS` (90; 0 keeps everything) these go:
- finished runs, with their output, result, input and prompts (the foreign keys' ON
  DELETE CASCADE). A run that has not finished is never deleted.
- idempotency keys whose run is gone (deleted here or by its member: the key stays, so a
  retry is told the run was deleted instead of running again) once they are that old too.
- finished webhook deliveries (delivered or failed), with their attempts. A pending one is
  still being sent and stays.
- connect links that expired that long ago.
The call log is kept as long as the usage report may show its month (app.services.usage,
24 months) or the retention, whichever is longer: it holds no bodies and no credentials.
Whatever the setting, sign-in sessions and OAuth `state`s that have expired are deleted:
nothing can use them any more.

The heartbeat's tick calls `Pruner.tick` (in a cluster one process per beat): every
`every_s` a pass deletes what is due, in batches of `batch` rows, each batch its own short
transaction beside the runs, and looks at up to 100 facilities' runs and calls; while a
batch comes back full or facilities are left, the next tick goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import Session

from app.lifecycle import FINAL, statuses
from app.models import (
    CallLog,
    ConnectLink,
    Facility,
    IdempotencyKey,
    OAuthState,
    Run,
    TriggerDelivery,
    UserSession,
)
from app.models._types import utcnow
from app.models.webhooks import WebhookDelivery
from app.services import usage

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 600.0
BATCH = 500
# Facilities whose runs and calls one pass looks at (two indexed queries each): a server
# of thousands goes round them over several beats instead of all in one.
FACILITIES_PER_PASS = 100
# An expired OAuth state is kept this long (a late callback then says "expired", not
# "unknown"): after that it is only a row.
_STATE_GRACE = timedelta(days=1)


@dataclass
class Pruned:
    """Rows one pass deleted, by kind."""

    runs: int = 0
    idempotency_keys: int = 0
    trigger_deliveries: int = 0
    deliveries: int = 0
    calls: int = 0
    connect_links: int = 0
    sessions: int = 0
    oauth_states: int = 0

    def total(self) -> int:
        """Rows deleted in all."""
        return sum(getattr(self, field.name) for field in fields(self))


class Pruner:
    """Deletes what the retention lets go (a heartbeat tick listener)."""

    def __init__(
        self,
        *,
        session_factory: Callable[[], Session],
        retention_days: int,
        clock: Callable[[], datetime] = utcnow,
        every_s: float = PRUNE_EVERY_S,
        batch: int = BATCH,
        facilities_per_pass: int = FACILITIES_PER_PASS,
    ) -> None:
        """`retention_days` 0 keeps runs, deliveries, links and the call log for good."""
        self._session_factory = session_factory
        self._retention = timedelta(days=retention_days) if retention_days else None
        self._clock = clock
        self._every = timedelta(seconds=every_s)
        self._batch = batch
        self._facilities_per_pass = facilities_per_pass
        self._after_facility = 0  # the last facility a pass looked at; 0: from the first
        self._next_pass: datetime | None = None
        self._more_left = False

    def tick(self) -> None:
        """A pass when one is due; never raises (the beat's other listeners come after)."""
        now = self._clock()
        if self._next_pass is not None and now < self._next_pass:
            return
        try:
            pruned = self.prune(now)
        except Exception:  # a database hiccup: try again at the next pass
            log.exception("pruning old runs and deliveries failed")
            self._next_pass = now + self._every
            return
        if pruned.total():
            log.info("retention: deleted %s", pruned)
        # A full batch somewhere means more is due: the next tick goes on.
        self._next_pass = now if self._more_left else now + self._every

    def prune(self, now: datetime | None = None) -> Pruned:
        """One batch of each kind that is due at `now`; the rows deleted."""
        now = now or self._clock()
        self._more_left = False
        pruned = Pruned()
        pruned.sessions = self._delete(UserSession, UserSession.expires_at <= now)
        pruned.oauth_states = self._delete(OAuthState, OAuthState.expires_at < now - _STATE_GRACE)
        if self._retention is None:
            return pruned
        cutoff = now - self._retention
        pruned.deliveries = self._delete(
            WebhookDelivery,
            WebhookDelivery.status.in_(("delivered", "failed")),
            WebhookDelivery.created_at < cutoff,
        )
        pruned.connect_links = self._delete(ConnectLink, ConnectLink.expires_at < cutoff)
        calls_cutoff = min(cutoff, usage.oldest_month(now))
        for facility_id in self._next_facilities():  # each on its (facility, created) index
            pruned.runs += self._delete(
                Run,
                Run.facility_id == facility_id,
                Run.created_at < cutoff,
                Run.status.in_(statuses(FINAL)),
            )
            pruned.calls += self._delete(
                CallLog, CallLog.facility_id == facility_id, CallLog.created_at < calls_cutoff
            )
        # After the runs: the keys of the runs deleted just now go in this pass too.
        pruned.idempotency_keys = self._delete(
            IdempotencyKey, IdempotencyKey.created_at < cutoff, IdempotencyKey.run_id.is_(None)
        )
        # A webhook's delivery ids, as idempotency keys (app.services.trigger_deliveries).
        pruned.trigger_deliveries = self._delete(
            TriggerDelivery, TriggerDelivery.created_at < cutoff, TriggerDelivery.run_id.is_(None)
        )
        return pruned

    def _next_facilities(self) -> list[int]:
        """The facilities this pass looks at, in turn after the last pass's; while some are
        left for the next, the next tick goes on."""
        with self._session_factory() as session:
            ids = list(
                session.scalars(
                    select(Facility.id)
                    .where(Facility.id > self._after_facility)
                    .order_by(Facility.id)
                    .limit(self._facilities_per_pass + 1)
                )
            )
        if len(ids) > self._facilities_per_pass:
            ids = ids[: self._facilities_per_pass]
            self._after_facility = ids[-1]
            self._more_left = True
        else:
            self._after_facility = 0  # round again from the first at the next pass
        return ids

    def _delete(self, model: Any, *where: ColumnElement[bool]) -> int:
        """Delete up to one batch of `model`'s rows matching `where`; how many."""
        with self._session_factory() as session, session.begin():
            ids = session.scalars(select(model.id).where(*where).limit(self._batch)).all()
            if ids:
                session.execute(
                    delete(model).where(model.id.in_(ids), *where),
                    execution_options={"synchronize_session": False},
                )
        if len(ids) == self._batch:
            self._more_left = True
        return len(ids)
