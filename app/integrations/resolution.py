"""Which account a call uses (DESIGN §3)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Account, Integration

# Why a call has no account: the `reason` of a prompt, or of NoIntegrationGrant when
# nobody is asked. Defined here once; the broker, the grant prompts and the pages use them.
MISSING = "missing"
NEEDS_REAUTH = "needs_reauth"
NO_MASTER_ACCOUNT = "no_master_account"
MASTER_NEEDS_REAUTH = "master_needs_reauth"
NOT_INTERACTIVE = "not_interactive"


def refusal_message(reason: str, service_name: str) -> str:
    """The words of NoIntegrationGrant for a reason decided here (not a person's answer)."""
    if reason == NO_MASTER_ACCOUNT:
        return (
            f"{service_name} has no master account; an admin can connect one on the Management page"
        )
    if reason == MASTER_NEEDS_REAUTH:
        return (
            f"the facility's {service_name} account must be signed in again by an admin "
            "(Management page)"
        )
    return (
        f"{service_name} needs an account, and nobody can be asked to sign in "
        "(connect one in Settings → Integrations)"
    )


@dataclass(frozen=True)
class Resolution:
    """The account to use, or why a person must be asked (`prompt_label`, `reason`)."""

    account: Account | None
    prompt_label: str | None = None
    reason: str = MISSING
    refuse_reason: str | None = None


def resolve(
    session: Session, integration: Integration, user_id: int | None, account: str | None
) -> Resolution:
    """None: master, else the user's own, else prompt; "user": own only (prompt);
    "master": master only (never prompts); "<label>": the user's labelled account.
    A master that must be signed in again is said so, never passed over in silence."""
    rows = session.scalars(select(Account).where(Account.integration_id == integration.id)).all()
    master = next((a for a in rows if a.owner_kind == "master"), None)
    master_active = master is not None and master.status == "active"

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
        if master_active:
            return Resolution(master)
        stale = master is not None
        return Resolution(None, refuse_reason=MASTER_NEEDS_REAUTH if stale else NO_MASTER_ACCOUNT)
    if account is None and master_active:
        return Resolution(master)
    label = "" if account in (None, "user") else str(account)
    mine = own(label)
    if mine is not None and mine.status == "active":
        return Resolution(mine)
    # A default call would have used the master: whoever is asked next must learn why.
    master_stale = account is None and master is not None
    if user_id is None:
        return Resolution(
            None, refuse_reason=MASTER_NEEDS_REAUTH if master_stale else NOT_INTERACTIVE
        )
    reason = MISSING if mine is None else NEEDS_REAUTH
    if mine is None and master_stale:
        reason = MASTER_NEEDS_REAUTH
    return Resolution(None, prompt_label=label, reason=reason)
