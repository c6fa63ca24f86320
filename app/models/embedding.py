"""What apps that embed Scriptbox use: connect links and idempotency keys of POST /runs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models._types import UTCDateTime, utcnow

CONNECT_OUTCOMES = ("connected", "refused", "error")
CONNECT_OWNERS = ("user", "master")


class ConnectLink(Base):
    """A short-lived, single-use link that runs one user's sign-in in any browser.

    Only the token's hash is stored. The first browser to open it is bound to it (a cookie
    whose hash is `browser_binding`); no other browser can continue that sign-in.
    """

    __tablename__ = "connect_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # "user": the user's own account; "master": the facility's (the link's user is an admin).
    owner: Mapped[str] = mapped_column(String(8), default="user", server_default="user")
    label: Mapped[str] = mapped_column(String(60), default="")
    return_to: Mapped[str | None] = mapped_column(String(1000))
    browser_binding: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(16))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    # Withdrawn by the embedding app (DELETE .../connect-links/<id>): it opens no more.
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IdempotencyKey(Base):
    """An `Idempotency-Key` of POST /runs: the same key (same user and facility) and the
    same request give the same run again instead of starting another. It outlives its run
    (`run_id` goes null when the run is deleted: a retry is told so, and starts nothing)
    until it is older than the retention."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "facility_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
