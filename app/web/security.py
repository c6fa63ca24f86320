"""Who is asking and what they may do: sessions, API tokens, CSRF and role checks.

Every page, API call and websocket message goes through `current_identity()` and
`require_member(slug, role)`; nothing is trusted from the browser.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from flask import current_app, redirect, request, session, url_for
from sqlalchemy import bindparam, select

from app import db
from app.errors import Forbidden, NotAuthenticated, NotFound
from app.models import ApiToken, Facility, Membership, Role, User
from app.models._types import UNSTORABLE_TEXT, utcnow
from app.services import sessions
from app.services.context import MemberContext

F = TypeVar("F", bound=Callable[..., Any])
TOKEN_PREFIX = "sbx_"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Identity:
    """The signed-in user and how they proved it."""

    user: User
    via_token: bool
    token_id: int | None = None  # the API token's row, when via_token


def hash_token(token: str) -> str:
    """SHA-256 of an API token (only the hash is stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_api_token() -> str:
    """A fresh API token, shown to its owner once."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def sign_in(user: User) -> None:
    """Start a fresh session for user, recorded on the server (the caller commits).

    A new id defeats session fixation; the record lets the server end it.
    """
    session.clear()
    session["user_id"] = user.id
    session["sid"] = sessions.start_session(
        db.session(), user=user, lifetime=current_app.permanent_session_lifetime
    )
    session["csrf"] = secrets.token_urlsafe(24)
    session.permanent = True


def sign_out() -> None:
    """End the session, on the server too (the caller commits)."""
    if session.get("sid"):
        sessions.end_session(db.session(), secret=str(session["sid"]))
    session.clear()


def token_live(token_id: int, user_id: int) -> bool:
    """True while API token `token_id` of user `user_id` is not revoked and its user is
    active (what a request made with it would find)."""
    return db.session.scalar(
        select(ApiToken.id)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.id == token_id, ApiToken.user_id == user_id, User.is_active.is_(True))
    ) is not None


def session_secret() -> str | None:
    """The secret of this browser's server-side session (None for API tokens)."""
    sid = session.get("sid")
    return str(sid) if sid else None


def session_binding() -> str:
    """A value tied to this browser session, for binding OAuth `state` to it."""
    sid = session.get("sid")
    if not sid:
        sid = session["sid"] = secrets.token_urlsafe(24)
    return hashlib.sha256(f"session:{sid}".encode()).hexdigest()


def csrf_token() -> str:
    """The session's CSRF token (created on first use)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(24)
    return str(token)


def check_csrf() -> None:
    """Refuse state-changing browser requests without the session's CSRF token."""
    if request.method in _SAFE_METHODS:
        return
    identity = request.environ.get(_IDENTITY_KEY)
    if identity is not None and identity.via_token:
        return  # API tokens are not sent automatically by browsers: no CSRF risk
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
    expected = session.get("csrf")
    if not expected or not hmac.compare_digest(str(sent), str(expected)):
        raise Forbidden(
            "the form expired or did not come from Scriptbox; reload the page and try again"
        )


TOKEN_USE_GRANULARITY = timedelta(minutes=1)
_IDENTITY_KEY = "scriptbox.identity"  # the request's identity, cached in its environ


def _user_from_token(header: str) -> tuple[User | None, int]:
    token = header.removeprefix("Bearer ").strip()
    if not token.startswith(TOKEN_PREFIX):
        raise NotAuthenticated("the API token is not valid")
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None:
        raise NotAuthenticated("the API token is not valid")
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= TOKEN_USE_GRANULARITY:
        row.last_used_at = now  # to the minute: not a write (and a commit) per request
    user = db.session.get(User, row.user_id)
    return (user if user is not None and user.is_active else None), row.id


def current_identity() -> Identity | None:
    """The signed-in user (session cookie or API token), cached per request."""
    # Cached on the request (not on `g`, which outlives a request when an app context
    # was already pushed, as in tests).
    cache = request.environ
    if _IDENTITY_KEY in cache:
        cached: Identity | None = cache[_IDENTITY_KEY]
        return cached
    identity = None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        user, token_id = _user_from_token(header)
        if user is None:
            raise NotAuthenticated("the API token is not valid")
        identity = Identity(user, via_token=True, token_id=token_id)
    elif "user_id" in session:
        # The cookie alone is not enough: its session must still exist on the server.
        secret, user_id = str(session.get("sid") or ""), session["user_id"]
        slug = (request.view_args or {}).get("slug")
        # A slug no facility can have (PostgreSQL refuses NUL in a query) names none: the
        # error page that refuses it still knows who is signed in.
        if slug is None or UNSTORABLE_TEXT.search(str(slug)):
            user = sessions.session_user(db.session(), secret=secret, user_id=user_id)
        else:  # under /f/<slug>: the membership comes with it (one query for both)
            found = sessions.session_member(
                db.session(), secret=secret, user_id=user_id, slug=str(slug))
            user, membership = found if found is not None else (None, None)
            if user is not None and membership is not None:
                _remember_member(MemberContext(user, *membership), str(slug))
        if user is not None:
            identity = Identity(user, via_token=False)
    cache[_IDENTITY_KEY] = identity
    return identity


def answer_as_signed_out() -> None:
    """The rest of this request sees nobody signed in, without asking the database (an
    error page while the database cannot be reached)."""
    request.environ[_IDENTITY_KEY] = None


def require_user() -> User:
    """The signed-in user, or NotAuthenticated."""
    identity = current_identity()
    if identity is None:
        raise NotAuthenticated("sign in to continue")
    return identity.user


def require_browser_session(refusal: str) -> User:
    """The user of a signed-in browser session; Forbidden(`refusal`) for an API token.

    For what would let a leaked token outlast its revocation: making more tokens, taking
    over the password.
    """
    identity = current_identity()
    if identity is None:
        raise NotAuthenticated("sign in to continue")
    if identity.via_token:
        raise Forbidden(refusal)
    return identity.user


# Asked on every request under /f/<slug>: built once, its values bound per call.
_MEMBERSHIP = (
    select(Facility, Membership)
    .join(Membership, Membership.facility_id == Facility.id)
    .where(Facility.slug == bindparam("slug"), Membership.user_id == bindparam("user_id"))
)


def require_member(slug: str, role: Role = Role.member) -> MemberContext:
    """The signed-in user's context in facility `slug`, requiring at least `role`.

    A facility the user does not belong to answers NotFound, so its existence leaks not.
    """
    user = require_user()
    # Cached on the request: the API's blueprint checks membership before the body is read
    # and the view asks again with its role; one query serves both (a signed-in browser's
    # came with its session's: `current_identity`).
    context: MemberContext | None = request.environ.get(_member_key(user.id, slug))
    if context is None:
        row = db.session.execute(_MEMBERSHIP, {"slug": slug, "user_id": user.id}).first()
        if row is None:
            raise NotFound("no such facility")
        facility, membership = row
        context = _remember_member(MemberContext(user, facility, membership.role), slug)
    facility = context.facility
    if not context.can(role):
        raise Forbidden(
            f"this needs the {role.value} role in {facility.name}: ask one of its admins for it"
        )
    return context


def _member_key(user_id: int, slug: str) -> str:
    return f"scriptbox.member.{user_id}.{slug}"


def _remember_member(context: MemberContext, slug: str) -> MemberContext:
    request.environ[_member_key(context.user.id, slug)] = context
    return context


def login_required(view: F) -> F:
    """Send anonymous browsers to the sign-in page (API callers get 401 JSON)."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_identity() is None:
            if request.path.startswith("/api/"):
                raise NotAuthenticated("sign in or send an API token")
            # full_path ends in "?" even without a query string: not worth carrying back.
            return redirect(url_for("auth.login", next=request.full_path.removesuffix("?")))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def sees_error_codes() -> bool:
    """Whether error pages show the code too: scripters and admins (of any facility) read
    codes and lines; members read the words only."""
    identity = current_identity()
    return identity is not None and any(
        role.at_least(Role.scripter) for _facility, role in memberships_of(identity.user)
    )


def memberships_of(user: User) -> list[tuple[Facility, Role]]:
    """The user's facilities with their role in each, by name."""
    rows = db.session.execute(
        select(Facility, Membership.role)
        .join(Membership, Membership.facility_id == Facility.id)
        .where(Membership.user_id == user.id)
        .order_by(Facility.name)
    ).all()
    return [(facility, role) for facility, role in rows]
