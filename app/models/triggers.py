"""Webhook triggers: a secret URL a third party POSTs to, to start a published script."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models._types import UTCDateTime, utcnow


class WebhookTrigger(Base):
    """A URL (`/hooks/<token>`) that starts runs of a published script as its owner.

    Only the SHA-256 of the token is stored (the token is shown once, at creation): a
    copy of the database starts no run. Not an outgoing webhook (WebhookEndpoint).
    """

    __tablename__ = "webhook_triggers"

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    # Deleting a script deletes its triggers: their URLs then answer 404.
    script_id: Mapped[int] = mapped_column(
        ForeignKey("scripts.id", ondelete="CASCADE"), index=True
    )
    # Whom its runs run as (who created it); a user deleted from the server takes it along.
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # False while paused (its URL answers 409 trigger_paused, starting nothing), as a
    # schedule's; paused_at says since when (both written by triggers.set_paused).
    enabled: Mapped[bool] = mapped_column(default=True)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The published version its member last saw (made it, or approved one since): a
    # version another scripter published later does not run as them until they approve it.
    approved_version: Mapped[int | None]
    # The secret a sender signs each body with (by signature_scheme), vault-encrypted; None
    # when the trigger checks no signature. Made by the server and shown once (github), or
    # pasted by its maker (slack, standard); never shown again.
    signing_secret_enc: Mapped[str | None] = mapped_column(Text)
    # How a signed trigger's POSTs are signed (SignatureScheme): GitHub's X-Hub-Signature-256
    # with the secret we made, Slack's X-Slack-Signature with the Slack app's signing
    # secret its maker pasted, or Standard Webhooks' webhook-signature with the sender's
    # whsec_ secret its maker pasted. Read only when signing_secret_enc is set. Plain text
    # (no CHECK, no enum): a new scheme needs no migration.
    signature_scheme: Mapped[str] = mapped_column(
        String(16), default="github", server_default="github"
    )
    # What its runs take as input (InputMode): the parsed body, or body, headers and query.
    input_mode: Mapped[str] = mapped_column(String(16), default="body", server_default="body")
    # The last call its URL refused (a bad body, a wrong signature, paused or stopped, too
    # many calls): when, its HTTP status and error code, so that its maker sees why their
    # sender fails; and how many it refused in all. One UPDATE a refusal
    # (app.services.trigger_refusals).
    last_refused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_refused_status: Mapped[int | None]
    last_refused_code: Mapped[str | None] = mapped_column(String(64))
    refused_count: Mapped[int] = mapped_column(default=0, server_default="0")
    # A script of the facility started once for each of its runs that ends failed or
    # timed out, as its member (app.services.failure_handlers), with the schedule's columns
    # (app.models.schedules.Schedule): a plain number, the handler's version its member
    # approved, and why the last handler run could not start, and when.
    on_failure_script_id: Mapped[int | None]
    on_failure_version: Mapped[int | None]
    on_failure_error: Mapped[str | None] = mapped_column(Text)
    on_failure_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# What a trigger's run takes as `input`: the body (as before), or the whole request.
InputMode = Literal["body", "request"]
# How a signed trigger's POSTs are signed: GitHub's way (and Gitea's, Forgejo's), Slack's, or
# the Standard Webhooks spec's (Svix, Resend, Clerk, Supabase, OpenAI...).
SignatureScheme = Literal["github", "slack", "standard"]


class TriggerDelivery(Base):
    """A delivery id (X-GitHub-Delivery or Idempotency-Key) a trigger accepted, and the run
    it started: a redelivery of it answers with that run instead of starting another. The
    unique (trigger, delivery) makes two concurrent deliveries start one run. Kept as long
    as idempotency keys are (app.services.retention)."""

    __tablename__ = "trigger_deliveries"
    __table_args__ = (UniqueConstraint("trigger_id", "delivery_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trigger_id: Mapped[int] = mapped_column(ForeignKey("webhook_triggers.id", ondelete="CASCADE"))
    delivery_id: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[str | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
