"""Which account a call uses (DESIGN §3)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Account, Integration


@dataclass(frozen=True)
class Resolution:
    """The account to use, or why a person must be asked (`prompt_label`, `reason`)."""

    account: Account | None
    prompt_label: str | None = None
    reason: str = "missing"
    refuse_reason: str | None = None


def resolve(
    session: Session, integration: Integration, user_id: int | None, account: str | None
) -> Resolution:
    """None: master, else the user's own, else prompt; "user": own only (prompt);
    "master": master only (never prompts); "<label>": the user's labelled account."""
    rows = session.scalars(select(Account).where(Account.integration_id == integration.id)).all()
    master = next((a for a in rows if a.owner_kind == "master"), None)

    def own(label: str) -> Account | None:
        return next(
            (
                a
                for a in rows
                if a.owner_kind == "user" and a.user_id == user_id and a.label == label
            ),
            None,
        )

    if account == "master":
        if master is not None and master.status == "active":
            return Resolution(master)
        return Resolution(None, refuse_reason="no_master_account")
    if account is None and master is not None and master.status == "active":
        return Resolution(master)
    label = "" if account in (None, "user") else str(account)
    mine = own(label)
    if mine is not None and mine.status == "active":
        return Resolution(mine)
    if user_id is None:
        return Resolution(None, refuse_reason="not_interactive")
    return Resolution(
        None, prompt_label=label, reason="needs_reauth" if mine is not None else "missing"
    )
