"""OAuth `state` rows at the callback: consumed once, then the issuer and the person's role
are checked before any code is exchanged. Flush, never commit."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.errors import OAuthCallbackError
from app.models import Integration, Membership, OAuthState, Role
from app.models._types import utcnow


def state_hash(state: str) -> str:
    """How a state is stored: only its SHA-256."""
    return hashlib.sha256(state.encode()).hexdigest()


def origin(url: str) -> str:
    """scheme://host[:port] of a URL, lowercased."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def consume_state(session: Session, state: str, session_binding: str) -> OAuthState:
    """The state's row, marked used by one conditional UPDATE: of parallel callbacks with
    one state exactly one gets past here, even across processes.

    A valid state arriving in another browser session than the one that started it is used
    up too, and refused: its callback URL (code and state) has left that browser, and must
    not be finished later anywhere, the starter's own browser included. The starter signs
    in again (a run's prompt stays pending for that)."""
    row = session.scalar(select(OAuthState).where(OAuthState.state_hash == state_hash(state or "")))
    if row is None:
        raise OAuthCallbackError(
            "This sign-in link is not valid. Start the sign-in again from Scriptbox."
        )
    used = session.execute(
        update(OAuthState)
        .where(OAuthState.id == row.id, OAuthState.used_at.is_(None))
        .values(used_at=utcnow())  # single use, even if what follows fails
        .execution_options(synchronize_session=False)
    )
    if not used.rowcount:  # type: ignore[attr-defined]
        raise OAuthCallbackError(
            "This sign-in link was already used, or opened in another browser session. "
            "Nothing was connected by it. Start the sign-in again."
        )
    if row.session_binding != session_binding:
        raise OAuthCallbackError(
            "This sign-in was started in another browser session, so it has been ended and "
            "nothing was connected. Start the sign-in again in the browser you use Scriptbox in."
        )
    session.refresh(row)
    return row


def check_issuer(integration: Integration, iss: str | None) -> None:
    """RFC 9207: an `iss` in the callback must name the integration's issuer (declared, or
    else the authorization endpoint's origin); a declared issuer must be sent."""
    if integration.issuer:
        if iss != integration.issuer:
            raise OAuthCallbackError(
                "The sign-in answer did not come from this integration's provider "
                "(its issuer does not match). Nothing was connected."
            )
        return
    if iss is not None and origin(iss) != origin(integration.authorization_url or ""):
        raise OAuthCallbackError(
            "The sign-in answer names another provider as its issuer. Nothing was connected."
        )


# Purposes of sign-ins that connect the facility's master account (from a page, or from a
# connect link an admin's API token made).
MASTER_PURPOSES = ("master", "link_master")


def owner_of(purpose: str) -> str:
    """Whose account a sign-in with this purpose connects: "master" or "user"."""
    return "master" if purpose in MASTER_PURPOSES else "user"


def check_still_allowed(session: Session, row: OAuthState) -> None:
    """The person who started the sign-in must still be a member (an admin, for the
    facility's master account) when it completes."""
    membership = session.scalar(
        select(Membership).where(
            Membership.user_id == row.user_id, Membership.facility_id == row.facility_id
        )
    )
    if membership is None:
        raise OAuthCallbackError("You are no longer a member of this facility.")
    if owner_of(row.purpose) == "master" and not membership.role.at_least(Role.admin):
        raise OAuthCallbackError(
            "Only admins can connect the facility's master account, and you no longer are one."
        )
