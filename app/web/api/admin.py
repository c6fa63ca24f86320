"""Facility administration: its name, the call log, usage per month and the monthly quota
(admins)."""

from __future__ import annotations

from pydantic import BaseModel, Field, StrictInt, StrictStr
from sqlalchemy import select

from app import db
from app.models import CallLog, Role
from app.services import people
from app.services import usage as usage_service
from app.services.call_filters import CallStatus
from app.web.api import paging
from app.web.api.base import api_blueprint
from app.web.api.run_calls import CallOut
from app.web.openapi import Body, Query, QueryInt, spec
from app.web.openapi_answers import Answer, list_of, reply
from app.web.security import require_member

bp = api_blueprint("api_admin")
TAGS = ("administration",)


class FacilityOut(BaseModel):
    """A facility: its slug (in every address; fixed) and its name."""

    slug: str
    name: str


class FacilityUpdate(Body):
    """A new name for the facility."""

    name: StrictStr = Field(max_length=10_000)  # the service says the real limit, in words


@bp.get("/f/<slug>")
@spec.validate(resp=reply(HTTP_200=FacilityOut), tags=TAGS)
def get_facility(slug: str) -> Answer:
    """The facility (any member)."""
    facility = require_member(slug).facility
    return FacilityOut(slug=facility.slug, name=facility.name)


@bp.patch("/f/<slug>")
@spec.validate(resp=reply(HTTP_200=FacilityOut), tags=TAGS)
def rename_facility(slug: str, json: FacilityUpdate) -> Answer:
    """Rename the facility (admins); its slug stays, so no address changes."""
    facility = require_member(slug, Role.admin).facility
    people.rename_facility(facility, json.name)
    db.session.commit()
    return FacilityOut(slug=facility.slug, name=facility.name)


class CallFilter(paging.Page):
    """Call log filters, page size and cursor."""

    integration: str | None = None
    user: QueryInt | None = None
    script: QueryInt | None = None
    status: CallStatus | None = None


class MonthUsage(BaseModel):
    """Calls per integration in one month."""

    month: str
    calls: dict[str, int]
    total: int


class Usage(MonthUsage):
    """Calls per integration this month, the total, the monthly quota and the history."""

    quota: int | None
    months: list[MonthUsage]


class UsageQuery(Query):
    """How many months of history (1..24, default 6)."""

    months: int = Field(default=6, ge=1, le=usage_service.MAX_MONTHS)


class QuotaBody(Body):
    """A whole number of calls a month, or null for no quota (the service checks the range)."""

    # No default: leaving it out is an error, sending null clears the quota.
    quota: StrictInt | None


class Quota(BaseModel):
    """The facility's monthly call quota (null: none)."""

    quota: int | None


@bp.get("/f/<slug>/calls")
@spec.validate(query=CallFilter, resp=reply(HTTP_200=list_of(CallOut)), tags=TAGS)
def call_log(slug: str, query: CallFilter) -> Answer:
    """The facility's call log, newest first, with filters: integration, user, script,
    status (admins).

    Paginated: `limit` (1..200, default 50) rows per page; when more rows follow, the
    `Next-Cursor` header holds the value to send as `cursor` for the next page.
    """
    member = require_member(slug, Role.admin)
    rows = select(CallLog).where(CallLog.facility_id == member.facility.id)
    if query.integration:
        rows = rows.where(CallLog.integration_key == query.integration)
    if query.user is not None:
        rows = rows.where(CallLog.user_id == query.user)
    if query.script is not None:
        rows = rows.where(CallLog.script_id == query.script)
    if query.status == "error":
        rows = rows.where((CallLog.error_code.is_not(None)) | (CallLog.status >= 400))
    elif query.status == "ok":
        rows = rows.where(CallLog.error_code.is_(None), CallLog.status < 400)
    position = paging.decode(query.cursor, kinds=(int,))
    if position:
        rows = rows.where(CallLog.id < position[0])
    limit = paging.page_limit(query.limit)
    found = list(db.session.scalars(rows.order_by(CallLog.id.desc()).limit(limit + 1)))
    page = found[:limit]
    next_position = [page[-1].id] if len(found) > limit else None
    return paging.with_next([row.to_dict() for row in page], next_position)


@bp.get("/f/<slug>/usage")
@spec.validate(query=UsageQuery, resp=reply(HTTP_200=Usage), tags=TAGS)
def usage(slug: str, query: UsageQuery) -> Answer:
    """This month's calls per integration, the quota, and `months` months of history
    (admins)."""
    member = require_member(slug, Role.admin)
    data = usage_service.monthly_usage(db.session(), member.facility)
    data["months"] = usage_service.usage_by_month(
        db.session(), member.facility, months=query.months
    )
    return data


@bp.put("/f/<slug>/usage/quota")
@spec.validate(resp=reply(HTTP_200=Quota), tags=TAGS)
def set_quota(slug: str, json: QuotaBody) -> Answer:
    """Set the facility's monthly call quota (`{"quota": 1000}`), or clear it
    (`{"quota": null}`); calls past it are refused with quota_exceeded (admins)."""
    member = require_member(slug, Role.admin)
    quota = usage_service.set_quota(db.session(), member.facility, json.quota)
    db.session.commit()
    return Quota(quota=quota)
