"""Pages for runs (the list with filters, one run) and a script's versions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Blueprint, current_app, request
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select

from app import db
from app.errors import NotFound, ValidationError
from app.lifecycle import RunStatus, is_final
from app.models import CallLog, Membership, Role, Script, User
from app.models.scripts import trace_dicts
from app.services import run_history, run_origins, versions
from app.services import scripts as scripts_service
from app.services.run_export import MAX_EXPORT_ROWS
from app.services.run_filters import TRIGGERS, RunFilters, parse_int
from app.web.pages import render_page
from app.web.security import login_required, require_member
from app.web.wording import SETTINGS_PLACE, error_in_words, restates_code

bp = Blueprint("runs_pages", __name__)


@bp.get("/f/<slug>/runs")
@login_required
def runs(slug: str) -> ResponseReturnValue:
    """Runs with filters and pages: members and scripters see their own, admins everyone's."""
    member = require_member(slug)
    # A hand-edited filter the page cannot read is said by the form, not a 400 page.
    filters = RunFilters.read(request.args)
    page = run_history.find_runs(
        db.session(), member, filters=filters, page=_page_number(request.args.get("page"))
    )
    # The waits for a sign-in that live runs are over, left out of their timers.
    live = [row.run.id for row in page.rows if not is_final(row.run.status)]
    waited: dict[str, float] = {}
    if live:
        for run_id, ms in db.session.execute(
            select(CallLog.run_id, func.sum(CallLog.wait_ms))
            .where(CallLog.run_id.in_(live), CallLog.facility_id == member.facility.id)
            .group_by(CallLog.run_id)
        ):
            if run_id is not None:  # always: the query asks for these runs' calls
                waited[run_id] = ms or 0
    users: Sequence[Any] = []
    if member.can(Role.admin):
        users = db.session.execute(
            select(User.id, User.name)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.facility_id == member.facility.id)
            .order_by(User.name)
        ).all()
    return render_page(
        "runs.html",
        member,
        page=page,
        filters=filters,
        schedule=run_origins.schedule_shown(db.session(), member, filters.schedule_id),
        without_schedule=filters.as_args(without={"schedule_id"}),
        hook=run_origins.trigger_shown(db.session(), member, filters.webhook_trigger_id),
        without_hook=filters.as_args(without={"webhook_trigger_id"}),
        export_cap=MAX_EXPORT_ROWS,
        statuses=list(RunStatus),
        triggers=TRIGGERS,
        scripts=scripts_service.list_scripts(db.session(), member),
        users=users,
        waited=waited,
        retention_days=current_app.config["RETENTION_DAYS"],
    )


def _page_number(value: str | None) -> int:
    """The page asked for; one that is not a number is the first (find_runs already shows
    the last for one past it)."""
    try:
        return parse_int(value, "page") or 1
    except ValidationError:
        return 1


@bp.get("/f/<slug>/runs/<run_id>")
@login_required
def run(slug: str, run_id: str) -> ResponseReturnValue:
    """One run: output, result, error with the script's traceback, its calls; stop, re-run."""
    member = require_member(slug)
    found = scripts_service.get_run(db.session(), member, run_id)
    script = db.session.get(Script, found.script_id) if found.script_id else None
    owner = db.session.get(User, found.user_id)
    calls = run_history.run_calls(db.session(), run=found)
    service = run_history.failing_service(db.session(), run=found)
    # Whose own accounts its calls used, as the calls' table says it to this reader.
    whose = (
        "your"
        if found.user_id == member.user.id
        else (f"{owner.name}'s" if owner else "its member's")
    )
    return render_page(
        "run.html",
        member,
        run=found,
        final=is_final(found.status),
        script=script,
        script_deleted=run_history.script_deleted(found),
        owner=owner,
        hook=run_origins.trigger_shown(db.session(), member, found.webhook_trigger_id),
        handled_by=run_origins.on_failure_run(db.session(), found),
        source_lines=found.source.splitlines(),
        trace=trace_dicts(found.error_trace),
        calls=calls,
        calls_whose=whose,
        scripter=member.can(Role.scripter),
        error_words=error_in_words(found.error_code, service, found.error_reason),
        error_code_said=restates_code(found.error_code, found.error_message),
        settings_place=SETTINGS_PLACE,
        # A live run's output reaches its row by the next heartbeat at the latest.
        store_ms=round(float(current_app.config["HEARTBEAT_S"]) * 1000),
    )


@bp.get("/f/<slug>/editor/<int:script_id>/versions")
@login_required
def script_versions(slug: str, script_id: int) -> ResponseReturnValue:
    """A script's versions: who saved each and when; view one, its diff, restore, publish."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    rows = versions.list_versions(db.session(), script=script)
    if not rows:
        raise NotFound(f"{script.name} has no saved version yet")
    numbers = {v.number: v for v in rows}
    chosen = numbers.get(parse_int(request.args.get("v"), "v") or rows[0].number)
    if chosen is None:
        raise NotFound(f"{script.name} has no such version")
    against_number = parse_int(request.args.get("against"), "against")
    if against_number is None:
        older = [v for v in rows if v.number < chosen.number]
        against = older[0] if older else None
    else:
        against = numbers.get(against_number)
    authors = dict(
        db.session.execute(
            select(User.id, User.name).where(User.id.in_({v.created_by for v in rows}))
        ).all()
    )
    return render_page(
        "versions.html",
        member,
        script=script,
        versions=rows,
        chosen=chosen,
        against=against,
        authors=authors,
        diff=versions.diff_lines(against.source if against else "", chosen.source),
    )
