"""A run's integration calls, from the call log (GET .../runs/<id>/calls)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from app import db
from app.models import CallLog
from app.services import scripts as scripts_service
from app.web.api import paging
from app.web.api.base import api_blueprint
from app.web.openapi import spec
from app.web.openapi_answers import Answer, list_of, reply
from app.web.security import require_member

bp = api_blueprint("api_run_calls")
TAGS = ("runs",)


class CallOut(BaseModel):
    """One integration call from the call log (never a credential)."""

    model_config = ConfigDict(extra="allow")
    id: int
    integration: str
    method: str = Field(
        description="The request's HTTP method, or `require` for an `integrations.require`"
        " that asked for a sign-in (its wait in `wait_ms`) or was refused: it sent nothing"
        " (empty `path`, no `status`) and is never usage"
    )
    path: str = Field(
        description="Where the call went: its full URL (scheme, host, path, query names"
        " without values), for a call refused before it was sent too, when the integration's"
        " base URL resolves it; else (an unknown integration, a base URL that needs an"
        " account's parameters) the path as the script wrote it"
    )


@bp.get("/f/<slug>/runs/<run_id>/calls")
@spec.validate(query=paging.Page, resp=reply(HTTP_200=list_of(CallOut)), tags=TAGS)
def run_calls(slug: str, run_id: str, query: paging.Page) -> Answer:
    """The integration calls a run made (from the call log), in order.

    Paginated: `limit`, `cursor` (see the `Next-Cursor` header).
    """
    member = require_member(slug)
    run = scripts_service.get_run(db.session(), member, run_id)
    rows = db.session.scalars(
        select(CallLog)
        .where(CallLog.run_id == run.id, CallLog.facility_id == member.facility.id)
        .order_by(CallLog.id)
    )
    page, after = paging.page_of(list(rows), query, key=lambda c: [c.id], kinds=(int,))
    return paging.with_next([row.to_dict() for row in page], after)
