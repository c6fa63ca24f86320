"""Outbound webhooks: endpoints an admin registers per facility, and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    and_,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models._types import UTCDateTime, new_id, utcnow

# What an endpoint may subscribe to (DESIGN: issue 12.3).
WebhookEvent = Literal[
    "run.finished",
    "grant.required",
    "account.connected",
    "account.needs_reauth",
    "account.disconnected",
]
WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = get_args(WebhookEvent)
# A test event an admin sends to one endpoint (the API's .../test): delivered whatever the
# endpoint subscribed to, and never something an endpoint subscribes to.
PING_EVENT = "ping"
# What a delivery's row stores. The sender claims only "pending" rows (webhook_sending.attempt).
DELIVERY_STATES = ("pending", "delivered", "failed")
# What the API and the Management page say: a pending delivery that has been tried is
# "retrying" ("pending" alone read as if nothing had been tried yet). Derived from the
# attempts rather than stored, so the sender's race-free claim keeps matching one stored
# status in every process and no migration or backfill is needed.
ShownStatus = Literal["pending", "retrying", "delivered", "failed"]
SHOWN_STATES: tuple[ShownStatus, ...] = get_args(ShownStatus)


class WebhookEndpoint(Base):
    """A URL of an embedding app that receives the facility's events, signed with its own
    secret (stored encrypted by the vault: the server needs it to sign)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(1000))
    events: Mapped[list[str]] = mapped_column(JSON)
    secret_enc: Mapped[str] = mapped_column(String(500))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class WebhookDelivery(Base):
    """One event for one endpoint: sent until it is answered 2xx or its attempts run out."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    response_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The delivery this one sends again (an admin's redelivery); same payload, new attempts.
    # No foreign key: both belong to one endpoint and are removed with it.
    redelivery_of: Mapped[str | None] = mapped_column(String(32))

    @property
    def shown_status(self) -> ShownStatus:
        """Its status in SHOWN_STATES: pending and tried before is retrying."""
        if self.status == "pending":
            return "retrying" if self.attempts else "pending"
        return "delivered" if self.status == "delivered" else "failed"

    def attempts_allowed(self, max_attempts: int) -> int:
        """Attempts it gets in all under the sender's limit `max_attempts`: one that is
        still pending always gets its next (a lowered limit ends it after that one), and
        one that gave up got what it had."""
        if self.status == "pending":
            return max(max_attempts, self.attempts + 1)
        if self.status == "failed":
            return self.attempts
        return max(max_attempts, self.attempts)


class WebhookAttempt(Base):
    """One attempt of a delivery, written by the sender: begun when it claims the delivery,
    ended with the HTTP status or the error in words (never the body of either side)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)  # 1 for the first attempt
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    response_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(300))

    @classmethod
    def in_flight(cls) -> ColumnElement[bool]:
        """The attempts not ended: being sent, or their sender never reported back (every
        ended attempt has an answer or an error)."""
        return and_(cls.response_code.is_(None), cls.error.is_(None))
