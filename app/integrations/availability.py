"""What `integrations.available()` answers: the facility's integrations and whose accounts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Account, Integration


def available(session: Session, *, facility_id: int, user_id: int | None) -> list[dict[str, Any]]:
    """Each of the facility's integrations by key: whether it has a master account, and the
    labels of the running user's own active accounts."""
    integrations = session.scalars(
        select(Integration).where(Integration.facility_id == facility_id).order_by(Integration.key)
    ).all()
    accounts = session.scalars(
        select(Account).where(Account.facility_id == facility_id, Account.status == "active")
    ).all()
    return [
        {
            "key": i.key,
            "name": i.name,
            "master": any(a.integration_id == i.id and a.owner_kind == "master" for a in accounts),
            "user_accounts": sorted(
                a.label
                for a in accounts
                if a.integration_id == i.id and a.owner_kind == "user" and a.user_id == user_id
            ),
        }
        for i in integrations
    ]
