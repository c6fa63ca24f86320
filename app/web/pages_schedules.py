"""The Schedules page: every schedule of the facility in one table (scripters and admins,
who see them on each script's panel too), with what it runs, as whom, when, and whether it
is paused or skipping. Its views sit on the pages blueprint (pages.py).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import request
from flask.typing import ResponseReturnValue

from app import db
from app.models import Role
from app.services import schedule_list
from app.web.api import paging
from app.web.api.schedules import cursor_of, position_of
from app.web.pages import bp, render_page
from app.web.security import login_required, require_member
from app.web.wording import skip_in_words

# Rows a page of the table shows; more are a "More schedules" link away (a facility has
# at most SCRIPTBOX_MAX_SCHEDULES_PER_FACILITY, 100 by default: one page).
PAGE_ROWS = 100


def on_its_clock(when: datetime, zone: str) -> str:
    """A due time on the schedule's own wall clock ("2026-12-07 09:00")."""
    return when.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


@bp.get("/f/<slug>/schedules")
@login_required
def schedules(slug: str) -> ResponseReturnValue:
    """The facility's schedules by next due time, paused last, filtered by script, member
    and state."""
    member = require_member(slug, Role.scripter)
    filters = schedule_list.ScheduleFilters.parse(request.args)
    cursor = request.args.get("cursor") or None
    found, following = schedule_list.list_facility_schedules(
        db.session(), member, filters=filters, after=position_of(cursor), limit=PAGE_ROWS
    )
    script_choices, owner_choices = schedule_list.filter_choices(db.session(), member)
    kept = {
        name: value
        for name, value in request.args.items()
        if name in ("state", "script_id", "user_id") and value
    }
    return render_page(
        "schedules.html",
        member,
        rows=found,
        filters=filters,
        kept=kept,
        states=schedule_list.STATES,
        script_choices=script_choices,
        owner_choices=owner_choices,
        skip_in_words=skip_in_words,
        on_its_clock=on_its_clock,
        first_page=cursor is None,
        next_cursor=None if following is None else paging.encode(cursor_of(following)),
    )
