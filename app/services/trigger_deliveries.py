"""Redeliveries of a webhook: a delivery id (`X-GitHub-Delivery`, `Idempotency-Key` from
other senders, the `event_id` of a body Slack signed, or the `webhook-id` a Standard
Webhooks sender signed) that a trigger accepted already gets the run it started, not
another.

Senders redeliver when they did not see our answer in time, or when a person presses
Redeliver: the job must not run twice. As POST /runs' idempotency keys (app.services.
idempotency), an id is remembered for the retention window, not only as long as its run
(app.services.retention prunes both alike), and the unique (trigger, delivery id) makes two
concurrent deliveries of one id start one run: the second's insert fails, and it answers
with the first's run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import IdempotencyKeyRunDeleted, ValidationError
from app.models import Run, TriggerDelivery, WebhookTrigger

# Read in this order: GitHub (and Gitea's X-Gitea-Delivery is sent alongside as
# X-GitHub-Delivery), then the generic header Stripe-style senders use.
HEADERS = ("X-GitHub-Delivery", "Idempotency-Key")
MAX_LENGTH = 200  # the column's width; GitHub's are UUIDs


def delivery_id(
    header: Callable[[str], str | None],
    *,
    slack_body: Any = None,
    signed_header: str | None = None,
) -> str | None:
    """The request's delivery id: the `event_id` of `slack_body`, a body Slack signed (its
    retries carry the same), or the header `signed_header` names, one the sender signed
    (trigger_signatures.delivery_header), else a header's (`header` reads one by name);
    None when it carries none; a 400 naming where it was when it is too long to be one."""
    names = HEADERS if signed_header is None else (signed_header, *HEADERS)
    found = [(name, (header(name) or "").strip()) for name in names]
    if isinstance(slack_body, dict) and isinstance(slack_body.get("event_id"), str):
        # First: Slack signs the body, not these headers, so a signed event replayed within
        # its 5 minutes with an Idempotency-Key added must still be the same delivery.
        found.insert(0, ("event_id", slack_body["event_id"].strip()))
    for name, value in found:
        if not value:
            continue
        if len(value) > MAX_LENGTH:
            raise ValidationError(
                f"{name} is longer than {MAX_LENGTH} characters: send a shorter delivery id",
                field=name,
            )
        return value
    return None


def earlier_run(session: Session, trigger: WebhookTrigger, delivery: str) -> Run | None:
    """The run this delivery id started through this trigger before, or None; a 410 in
    words when that run has been deleted since (repeating the delivery starts nothing)."""
    row = session.scalar(
        select(TriggerDelivery).where(
            TriggerDelivery.trigger_id == trigger.id, TriggerDelivery.delivery_id == delivery
        )
    )
    if row is None:
        return None
    run = session.get(Run, row.run_id) if row.run_id is not None else None
    if run is None:
        raise IdempotencyKeyRunDeleted(
            "this delivery started a run already, and that run has been deleted since:"
            " redelivering it starts nothing. To run it again, send it as a new delivery",
            field="delivery",
        )
    return run


def remember(session: Session, trigger: WebhookTrigger, delivery: str, run: Run) -> None:
    """Record that `delivery` started `run` (flushed with the run: both or neither)."""
    session.add(TriggerDelivery(trigger_id=trigger.id, delivery_id=delivery, run_id=run.id))
    session.flush()
