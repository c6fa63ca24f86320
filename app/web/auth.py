"""Sign in and out."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.security import check_password_hash

from app import db
from app.errors import TooManyAttempts, ValidationError
from app.models import Role, User
from app.services import invitations, passwords, people
from app.web.security import (
    check_csrf,
    current_identity,
    login_required,
    memberships_of,
    require_browser_session,
    require_user,
    session_secret,
    sign_in,
    sign_out,
)
from app.web.throttle import login_throttle

bp = Blueprint("auth", __name__)

# A hash of nothing in particular, checked when the email is unknown so that a wrong
# email and a wrong password take the same time.
_DUMMY_HASH = (
    "scrypt:32768:8:1$F31zDT2zH5FmBOsR$621400276bce2468dc308e90b8b6189c60b0dcc35a51d23f469a816"
    "ed2aca55c23821a3304a7b334b85f7f31a5c1b50da4127bd16244e907468d8b5cf9e11da8"
)


def _safe_next(target: str | None) -> str:
    # Only same-site paths: never an open redirect to another host. Browsers drop tabs
    # and newlines from URLs and read "\\" as "/", so "/\t/evil.example" would become
    # "//evil.example": refuse every control character and space, not only "//".
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and not any(ord(char) < 0x21 or ord(char) == 0x7F for char in target)
    ):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("auth.home")


@bp.get("/")
def home() -> ResponseReturnValue:
    """Send the user to their first facility's scripts, or to sign in."""
    identity = current_identity()
    if identity is None:
        return redirect(url_for("auth.login"))
    memberships = memberships_of(identity.user)
    if not memberships:
        if invitations.pending_for(db.session(), user=identity.user):
            return redirect(url_for("pages.my_invitations"))
        return redirect(url_for("pages.settings_integrations"))
    return redirect(url_for("pages.scripts", slug=memberships[0][0].slug))


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The sign-in form (a signed-in browser goes on to where it was headed)."""
    error, email = None, ""
    if request.method == "GET" and current_identity() is not None:
        return redirect(_safe_next(request.args.get("next")))
    if request.method == "POST":
        check_csrf()
        email = request.form.get("email", "").strip().lower()
        password = request.form.get("password", "")
        try:
            login_throttle().attempt(email=email, address=request.remote_addr or "unknown")
        except TooManyAttempts as exc:
            page = render_template("login.html", error=exc.message, email=email)
            return page, exc.status, {"Retry-After": str(exc.retry_after)}
        user = db.session.scalar(select(User).where(User.email == email))
        valid = check_password_hash(user.password_hash if user else _DUMMY_HASH, password)
        if user is not None and user.is_active and valid:
            login_throttle().succeeded(email=email)
            sign_in(user)
            db.session.commit()
            return redirect(_safe_next(request.args.get("next")))
        error = "That email and password do not match. Check both and try again."
    # The address typed is kept after a failed attempt: only the password is asked again.
    return render_template("login.html", error=error, email=email), 401 if error else 200


# What an API token is told when it asks to change the password: a leaked token must not
# take the account over (nor guess the password it does not know).
PASSWORD_BY_TOKEN = (
    "an API token cannot change the password; change it under Settings → Password "
    "while signed in"
)


def change_own_password(*, current_password: str, new_password: str) -> int:
    """Change the password of the user signed in in this browser (Forbidden for an API
    token), each try counted on their sign-in count (TooManyAttempts past it, before the
    password is checked); how many of their other sessions ended. The page and the API
    both come here."""
    user = require_browser_session(PASSWORD_BY_TOKEN)
    throttle = login_throttle()
    throttle.password_check(email=user.email)
    try:
        ended = passwords.change_password(
            db.session(),
            user=user,
            current_password=current_password,
            new_password=new_password,
            keep_session=session_secret(),
        )
    except ValidationError as exc:
        if exc.details.get("field") != "current_password":
            throttle.succeeded(email=user.email)  # the current password was right
        raise
    throttle.succeeded(email=user.email)
    return ended


@bp.route("/settings/password", methods=["GET", "POST"])
@login_required
def password() -> ResponseReturnValue:
    """Change the password; every other session of the user ends."""
    user = require_user()
    error = done = None
    retry_after: int | None = None
    if request.method == "POST":
        check_csrf()
        try:
            # A typo in a password nobody sees would lock its owner out: the page asks twice.
            if request.form.get("repeat_password", "") != request.form.get("new_password", ""):
                raise ValidationError("the two new passwords differ; type the same one twice",
                                      field="repeat_password")
            ended = change_own_password(
                current_password=request.form.get("current_password", ""),
                new_password=request.form.get("new_password", ""),
            )
        except (ValidationError, TooManyAttempts) as exc:
            db.session.rollback()
            error = exc.message
            retry_after = exc.retry_after if isinstance(exc, TooManyAttempts) else None
        else:
            db.session.commit()
            done = f"Password changed. {ended} other session(s) signed out."
    page = render_template(
        "settings_password.html",
        user=user,
        member=None,
        memberships=memberships_of(user),
        Role=Role,
        error=error,
        done=done,
        min_length=people.MIN_PASSWORD,
    )
    if retry_after is not None:
        return page, 429, {"Retry-After": str(retry_after)}
    return page, 400 if error else 200


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session."""
    check_csrf()
    sign_out()
    db.session.commit()
    return redirect(url_for("auth.login"))
