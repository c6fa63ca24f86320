"""What depends on an integration (scripts that call it, connected accounts, unfinished runs),
told to the admin before it is deleted or disabled; the disable switch itself; and the
deletion, which takes the accounts along and announces each of them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.errors import ValidationError
from app.lifecycle import NOT_FINAL, statuses
from app.models import Account, Grant, Integration, Run, Script, ScriptVersion
from app.services import webhooks
from app.services.readiness import referenced_calls


def _calls_key(source: str, key: str) -> bool:
    try:
        return any(call.key.lower() == key for call in referenced_calls(source))
    except ValidationError:  # too slow to read: named, so the admin is warned all the same
        return True


def dependents(session: Session, *, integration: Integration) -> dict[str, Any]:
    """Scripts whose draft or published version calls the integration, its accounts, and the
    runs waiting for a sign-in to it."""
    scripts = session.scalars(
        select(Script).where(Script.facility_id == integration.facility_id).order_by(Script.name)
    ).all()
    published = {
        (v.script_id, v.number): v.source
        for v in session.scalars(
            select(ScriptVersion)
            .join(Script, Script.id == ScriptVersion.script_id)
            .where(
                Script.facility_id == integration.facility_id,
                ScriptVersion.number == Script.published_version,
            )
        )
    }
    using = [
        {"id": s.id, "name": s.name, "published": s.published}
        for s in scripts
        if _calls_key(s.source, integration.key)
        or _calls_key(published.get((s.id, s.published_version or 0), ""), integration.key)
    ]
    kinds = dict(
        session.execute(
            select(Account.owner_kind, func.count())
            .where(Account.integration_id == integration.id)
            .group_by(Account.owner_kind)
        ).all()
    )
    waiting = session.scalar(
        select(func.count())
        .select_from(Run)
        .join(Grant, Grant.id == Run.waiting_grant_id)
        .where(
            Grant.integration_id == integration.id,
            Run.status.in_(statuses(NOT_FINAL)),
        )
    )
    return {
        "scripts": using,
        "master_accounts": int(kinds.get("master", 0)),
        "user_accounts": int(kinds.get("user", 0)),
        "waiting_runs": int(waiting or 0),
    }


def set_enabled(session: Session, *, integration: Integration, enabled: bool) -> None:
    """Switch an integration on or off; while off, scripts' calls to it are refused."""
    integration.enabled = enabled
    session.flush()


def delete_integration(session: Session, *, integration: Integration) -> int:
    """Delete the integration and its accounts, each account announced as
    `account.disconnected` (reason `integration_deleted`) in this transaction: a receiver
    that mirrors accounts hears of every one that went, and of none if the deletion does
    not commit. How many accounts went."""
    # Locked first (PostgreSQL): an account being connected meanwhile holds a key-share
    # lock on this row (its foreign key), so it either committed before and is deleted
    # and announced below, or waits for this transaction and then fails. On SQLite the
    # DELETE below is this transaction's first write, which holds off every other writer.
    session.execute(
        select(Integration.id).where(Integration.id == integration.id).with_for_update()
    )
    # The rows the DELETE removed, not a SELECT before it: none is announced that stays,
    # and none goes unannounced.
    gone = session.scalars(
        delete(Account).where(Account.integration_id == integration.id).returning(Account)
    ).all()
    for account in gone:
        webhooks.announce_disconnected(session, account, integration, reason="integration_deleted")
    session.delete(integration)
    session.flush()
    return len(gone)
