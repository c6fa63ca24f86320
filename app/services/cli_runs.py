"""`scriptbox run --facility`: a script run from the terminal with the facility's integrations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import select

from app import db
from app.errors import Forbidden, NotFound
from app.models import Membership, Role, User
from app.services import people
from app.services.context import MemberContext
from app.services.scripts import create_run
from sandbox import FAILED, RunResult, ScriptError


def run_with_integrations(
    app: Flask,
    run_input: Any,
    slug: str,
    email: str | None,
    *,
    source: str | None = None,
    script_id: int | None = None,
    drive: Callable[[str], RunResult | None],
) -> RunResult:
    """Run source, or saved script `script_id`, as `email` (or the first admin) in `slug`.

    Nobody can be asked to sign in from a terminal, so a missing account raises
    `no_integration_grant` with reason `not_interactive` inside the script.
    """
    with app.app_context():
        facility = people.facility_by_slug(db.session(), slug)
        if email is None:
            user = db.session.scalar(
                select(User)
                .join(Membership, Membership.user_id == User.id)
                .where(Membership.facility_id == facility.id, Membership.role == Role.admin)
                .order_by(User.id)
            )
            if user is None:
                raise NotFound(f"{slug} has no admin to run as; pass --user")
        else:
            user = people.user_by_email(db.session(), email)
        membership = people.membership_of(db.session(), user.id, facility.id)
        if membership is None:
            raise NotFound(f"{user.email} is not a member of {slug}")
        member = MemberContext(user, facility, membership.role)
        if script_id is None and not member.can(Role.scripter):
            raise Forbidden(
                f"{user.email} is a {membership.role.value} of {slug}: members may run the"
                f" facility's published scripts by id (--script ID); running a file needs the"
                " scripter role"
            )
        run = create_run(
            db.session(),
            member,
            script_id=script_id,
            source=source,
            run_input=run_input,
            interactive=False,
            from_terminal=True,
            max_queued=int(app.config["MAX_QUEUED_RUNS_PER_USER"]),
        )
        db.session.commit()
        outcome = drive(run.id)
    if outcome is None:
        return RunResult(FAILED, error=ScriptError("internal_error", "the run disappeared"))
    return outcome
