"""Connect links: a short-lived, single-use link that runs one user's sign-in to one
integration in any browser, without a Scriptbox session (Nango's connect sessions).

The first browser that opens a link is bound to it: the link stores the hash of a secret
kept in that browser's cookie, and the OAuth `state` is bound to the same hash, so a link
that leaks after it was opened cannot be used to finish someone else's sign-in. Opening
takes a person's click on the link's page: a GET binds nothing, so the mail scanner or
chat preview that fetches a link before its person does cannot spend it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import timedelta
from typing import Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict, Forbidden, LinkRefused, NotFound, ValidationError
from app.models import ConnectLink, Integration, Membership, Role
from app.models._types import utcnow
from app.services.account_rules import validate_label
from app.services.context import MemberContext
from app.services.oauth_sign_in import check_return_to

# How long a link may wait to be opened; the sign-in then has the OAuth state's lifetime.
LINK_LIFETIME = timedelta(minutes=15)
# The auth modes a user connects their own account with (the others are facility-wide).
USER_AUTH_MODES = ("oauth2", "api_key", "api_key_secret", "basic")
LINK_PREFIX = "sbc_"
LinkStateName = Literal["open", "opened", "used", "expired", "revoked"]
# What a withdrawn link's page (and a sign-in started from it) says.
WITHDRAWN = (
    "This connect link was withdrawn by the app that sent it: nothing was connected. "
    "Ask the app for a new one."
)


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def browser_binding(secret: str) -> str:
    """The value a link and its OAuth state are bound to, from the browser's cookie secret."""
    return _hash(f"connect:{secret}")


def create_link(
    session: Session,
    *,
    member: MemberContext,
    integration: Integration,
    user_id: int | None,
    label: str,
    return_to: str | None,
    allowed_return_origins: Iterable[str],
    owner: str = "user",
) -> tuple[ConnectLink, str]:
    """A new link (and its token, shown once) for `user_id` (default: the caller).

    owner="master" connects the facility's master account: only admins make such a link,
    and only for themselves (the admin is the one who signs in at the provider).
    """
    if integration.facility_id != member.facility.id:
        raise NotFound("no such integration")
    if integration.auth_mode not in USER_AUTH_MODES:
        raise ValidationError(
            f"{integration.name} has no account to connect in a browser", field="integration"
        )
    target = member.user.id if user_id is None else user_id
    if owner == "master":
        if not member.can(Role.admin):
            raise Forbidden("only admins connect the facility's master account")
        if target != member.user.id:
            raise ValidationError(
                "a master account link is for the admin who makes it", field="user_id"
            )
        label = ""
    if target != member.user.id:
        if not member.can(Role.admin):
            raise Forbidden("only admins create links for other members")
        is_member = session.scalar(
            select(Membership.user_id).where(
                Membership.user_id == target, Membership.facility_id == member.facility.id
            )
        )
        if is_member is None:
            raise NotFound("no such member", field="user_id")
    check_return_to(return_to, allowed_return_origins)
    return issue(
        session,
        facility_id=member.facility.id,
        user_id=target,
        integration=integration,
        created_by=member.user.id,
        label=label,
        return_to=return_to,
        owner=owner,
    )


def issue(
    session: Session,
    *,
    facility_id: int,
    user_id: int,
    integration: Integration,
    created_by: int | None,
    label: str,
    return_to: str | None,
    owner: str = "user",
) -> tuple[ConnectLink, str]:
    """Store a new link whose checks were made by the caller; its token, shown once."""
    token = LINK_PREFIX + secrets.token_urlsafe(32)
    link = ConnectLink(
        token_hash=_hash(token),
        facility_id=facility_id,
        user_id=user_id,
        integration_id=integration.id,
        created_by=created_by,
        owner=owner,
        label=validate_label(label.strip()),
        return_to=return_to,
        expires_at=utcnow() + LINK_LIFETIME,
    )
    session.add(link)
    session.flush()
    return link, token


def url_of(public_url: str, token: str) -> str:
    """Where a link's token is opened."""
    return f"{public_url.rstrip('/')}/connect/{token}"


def find_link(session: Session, *, token: str, browser_secret: str | None) -> ConnectLink:
    """The link behind `token`, not yet opened or opened by this browser; binds nothing.
    Another browser's link, a finished or expired link: refused."""
    link = session.scalar(select(ConnectLink).where(ConnectLink.token_hash == _hash(token)))
    if link is None:
        raise NotFound("This connect link is not valid. Ask the app that sent you for a new one.")
    state = state_of(link)  # the one rule of a link's expiry
    if state == "revoked":
        raise refused(link, WITHDRAWN, status="revoked")
    if state == "used":
        raise refused(
            link, "This connect link was already used. Ask for a new one.", status="used"
        )
    # Reloading the page in the browser that opened it continues the same sign-in, for
    # LINK_LIFETIME after it was opened (a form left open for days is no sign-in).
    if link.opened_at is not None and (
        browser_secret is None or link.browser_binding != browser_binding(browser_secret)
    ):
        # Not "already used": nothing was connected, and the person (who pressed its
        # button on their phone, say) can still finish in the browser that did.
        raise Forbidden(
            "This connect link was opened in another browser: finish connecting there, "
            "or ask for a new link."
        )
    if state == "expired":
        raise refused(
            link,
            "This connect link expired. Ask the app that sent you for a new one.",
            status="expired",
        )
    return link


def refused(link: ConnectLink, message: str, *, status: LinkStateName) -> LinkRefused:
    """The refusal of a link that opens no more: its page says `message` and offers the way
    back to the app that sent it (its return_to with `status`), never sending the browser
    there itself: a mail scanner's GET must not bounce, and the person reads why first."""
    return LinkRefused(message, way_back=return_url(link, status=status))


def open_link(
    session: Session, *, token: str, browser_secret: str | None
) -> tuple[ConnectLink, str]:
    """The link behind `token` (as `find_link`), bound to this browser on first use; returns
    the browser's secret (a new one on first use)."""
    link = find_link(session, token=token, browser_secret=browser_secret)
    if link.opened_at is not None and browser_secret is not None:
        return link, browser_secret
    secret = secrets.token_urlsafe(32)
    link.opened_at = utcnow()
    link.browser_binding = browser_binding(secret)
    session.flush()
    return link, secret


def link_of_member(session: Session, *, member: MemberContext, link_id: int) -> ConnectLink:
    """Link `link_id` as its facility's admins and its own user see it; anyone else's (or
    another facility's) is no such link, as for accounts."""
    link = session.get(ConnectLink, link_id)
    if (
        link is None
        or link.facility_id != member.facility.id
        or (link.user_id != member.user.id and not member.can(Role.admin))
    ):
        raise NotFound("no such connect link")
    return link


def state_of(link: ConnectLink) -> LinkStateName:
    """open (not yet opened), opened (a browser pressed its button), used (finished:
    `outcome` says how), expired (never finished in time) or revoked."""
    if link.revoked_at is not None:
        return "revoked"
    if link.finished_at is not None:
        return "used"
    now = utcnow()
    if link.opened_at is not None:
        return "expired" if link.opened_at + LINK_LIFETIME < now else "opened"
    return "expired" if link.expires_at < now else "open"


def revoke(session: Session, link: ConnectLink) -> None:
    """Withdraw a link not yet used: it opens no more and a sign-in started from it binds
    nothing. Revoking it again changes nothing; a used link is a Conflict (what it
    connected stays: disconnect that account instead)."""
    if link.revoked_at is not None:
        return
    if link.finished_at is not None:
        raise Conflict(
            f"this connect link was already used ({link.outcome}): revoking it undoes nothing; "
            "disconnect the account it connected instead"
        )
    link.revoked_at = utcnow()
    session.flush()


def check_owner_allowed(session: Session, link: ConnectLink) -> None:
    """A link works only while its user is still a member (an admin, for a master-account
    link): asked each time it is opened or its form is sent, as the OAuth callback asks."""
    role = session.scalar(
        select(Membership.role).where(
            Membership.user_id == link.user_id, Membership.facility_id == link.facility_id
        )
    )
    if role is None:
        raise Forbidden("You are no longer a member of this facility: nothing can be connected.")
    if link.owner == "master" and not role.at_least(Role.admin):
        raise Forbidden("Only admins connect the facility's master account. Ask an admin.")


def link_of_browser(session: Session, *, browser_secret: str | None) -> ConnectLink | None:
    """The open, unfinished link this browser is bound to, if any (a revoked one too: its
    callback says so and connects nothing)."""
    if not browser_secret:
        return None
    return session.scalar(
        select(ConnectLink).where(
            ConnectLink.browser_binding == browser_binding(browser_secret),
            ConnectLink.finished_at.is_(None),
        )
    )


def finish(
    session: Session, link: ConnectLink, *, outcome: str, account_id: int | None = None
) -> str | None:
    """Record the outcome; the `return_to` URL carrying it, when the link has one."""
    link.finished_at = utcnow()
    link.outcome = outcome
    link.account_id = account_id
    session.flush()
    return return_url(link, status=outcome, account_id=account_id)


def return_url(link: ConnectLink, *, status: str, account_id: int | None = None) -> str | None:
    """The link's `return_to` with `status` (connected, refused or error when it finished;
    expired, used or revoked from the page of a link that opens no more) and the account
    id in its query, as the embedding app reads it; None when it has no return_to."""
    if not link.return_to:
        return None
    answer = {"status": status}
    if account_id is not None:
        answer["account_id"] = str(account_id)
    parts = urlsplit(link.return_to)
    query = f"{parts.query}&{urlencode(answer)}" if parts.query else urlencode(answer)
    return urlunsplit(parts._replace(query=query))
