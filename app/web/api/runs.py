"""Runs of scripts: start (optionally waiting), list, read, cancel, rerun, explain, their
calls; prompts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from flask import current_app, request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError

from app import db, extensions
from app.db import MAX_INTEGER
from app.errors import NotFound, ValidationError
from app.lifecycle import RunStatus, is_final
from app.models import CallLog, Grant, Run
from app.services import idempotency, run_history
from app.services import scripts as scripts_service
from app.services.context import MemberContext
from app.web.api import paging
from app.web.api.base import api_blueprint, location
from app.web.limits import waiting_requests
from app.web.openapi import (
    Answer,
    Body,
    QueryInt,
    list_of,
    reply,
    spec,
)
from app.web.security import require_member
from app.web.wording import error_in_words

bp = api_blueprint("api_runs")
TAGS = ("runs",)

# The longest a caller may block on POST /runs for the run to finish.
MAX_WAIT_S = 300.0


class TraceFrame(BaseModel):
    """One frame of the script's own code in an error's traceback. As Python's traceback
    says "[Previous line repeated N more times]", a frame that came again right after
    itself is one frame with `repeated`; a trace too deep to keep whole keeps its outermost
    and innermost frames and says, by `omitted_after`, how many it left out in between."""

    line: int
    name: str
    repeated: int = Field(
        default=0, ge=0,
        description="How many more times this same frame (line and function) came right"
        " after it, as in deep recursion; 0 for a frame that came once",
    )
    omitted_after: int = Field(
        default=0, ge=0,
        description="How many frames were left out right after this one to fit the trace"
        " (the outermost and innermost frames are kept); 0 where none were",
    )


class RunError(BaseModel):
    """Why a run failed: the sandbox or integration error code, words, the line and the
    script's own frames (outermost first); for `no_integration_grant`, `reason` says why
    (`no_master_account`, `master_needs_reauth`, `not_interactive`, `refused`, `expired`,
    `cancelled`, `too_many_prompts`, ...)."""

    code: str
    message: str | None
    line: int | None
    trace: list[TraceFrame] = []
    reason: str | None = None


class RunUser(BaseModel):
    """Who started a run: their user id and name (never their email)."""

    id: int
    name: str


class RunOut(BaseModel):
    """A run, who started it and, once final, its result, output and error."""

    id: str
    script_id: int | None
    version: int | None = Field(
        description="The saved version of the script that ran; null for unsaved source"
    )
    user_id: int
    user: RunUser
    trigger: Literal["manual", "schedule"] = Field(
        description="What started the run: a person or an API call (manual), or a schedule"
    )
    schedule_id: int | None = Field(
        description="The schedule that started it (null for manual runs, and once the"
        " schedule is deleted: `trigger` still says schedule)"
    )
    status: str
    input: Any
    result: Any
    output: str | None
    error: RunError | None
    calls: int | None = Field(
        description="Integration calls the script made (counted against the run's limit):"
        " requests, and `integrations.require` and `available`, which send none; the"
        " requests are in GET .../runs/<id>/calls, with a `require` that asked for a"
        " sign-in or was refused (method `require`)"
    )
    duration_ms: float | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None


class RunCreate(Body):
    """What to run (a script id, or source for scripters), its input, and how long to wait."""

    script_id: StrictInt | None = Field(default=None, ge=-MAX_INTEGER, le=MAX_INTEGER)
    source: StrictStr | None = None
    input: Any = None
    # With source (the editor's draft): its declared input fields, unsaved, to check the
    # input against (as a script's `inputs`).
    inputs: list[Any] | None = None
    wait: float | None = Field(default=None, allow_inf_nan=False, ge=0, le=MAX_WAIT_S)
    interactive: StrictBool | None = None


class RunList(paging.Page):
    """Filters, page size and cursor of the runs list."""

    script_id: QueryInt | None = None
    status: RunStatus | None = Field(
        default=None, description="Only runs in this status (e.g. failed, waiting_for_grant)"
    )
    user_id: QueryInt | None = Field(
        default=None, description="Only runs this user started (admins; others see their own)"
    )
    since: StrictStr | None = Field(
        default=None, description="Only runs started on or after this day (2026-01-31), in `tz`"
    )
    until: StrictStr | None = Field(
        default=None, description="Only runs started on or before this day, in `tz`"
    )
    tz: StrictStr | None = Field(
        default=None, description="The time zone of `since` and `until` (Europe/Paris); UTC"
        " when absent"
    )


class RunHeaders(BaseModel):
    """`Idempotency-Key`: a retried POST with the same key and body gets the same run."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    idempotency_key: str | None = Field(
        default=None,
        validation_alias=idempotency.HEADER,
        min_length=1,
        max_length=idempotency.MAX_KEY_LENGTH,
    )


class CancelOut(BaseModel):
    """Whether a cancel was sent (False when the run had already ended) and the run's status."""

    id: str
    cancelling: bool
    status: str


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


class Explanation(BaseModel):
    """The run's error as a sentence a member can act on (null when it did not fail)."""

    words: str | None


class GrantRefused(BaseModel):
    """A prompt's state after refusing it."""

    grant_id: str
    state: str


@bp.post("/f/<slug>/runs")
@spec.validate(headers=RunHeaders, resp=reply(HTTP_200=RunOut, HTTP_201=RunOut), tags=TAGS)
def create_run(slug: str, json: RunCreate, headers: RunHeaders) -> Answer:
    """Start a run of a script (or of source, for scripters); `wait` seconds to block.

    201 while the run is still going, 200 when it finished within `wait`; either way
    `Location` is the run's URL, to GET it at. With an `Idempotency-Key`, repeating the
    request gives the run it started (409 if the key was used with a different request;
    `wait` may differ).
    """
    member = require_member(slug)
    wait = float(json.wait or 0.0)
    # A run started from a page with an open websocket may prompt; API runs may not.
    interactive = bool(json.interactive) and request.authorization is None
    key = headers.idempotency_key
    # `wait` is how long this request blocks, not what it asks for: a retry may change it.
    fingerprint = (
        idempotency.request_hash(json.model_dump(exclude={"wait"})) if key is not None else ""
    )
    run = _earlier_run(member, key, fingerprint)
    if run is None:
        try:
            run = scripts_service.create_run(
                db.session(),
                member,
                script_id=json.script_id,
                source=json.source,
                run_input=json.input,
                interactive=interactive,
                input_fields=json.inputs,
            )
            if key is not None:
                idempotency.remember(
                    db.session(), member=member, key=key, fingerprint=fingerprint, run=run
                )
            db.session.commit()
        except IntegrityError:
            # The same key raced in from another request: its run is the answer.
            db.session.rollback()
            run = _earlier_run(member, key, fingerprint)
            if run is None:
                raise
        else:
            extensions.run_queue().submit(run.id)
    # The member started it (a repeated key finds only the member's own runs): their name
    # came with the request, so the hot path asks nothing more.
    names = run_history.runner_names(db.session(), member)
    found_at = location("api_runs.get_run", slug=slug, run_id=run.id)
    if wait and not is_final(run.status):
        config = current_app.config
        with waiting_requests().hold(
            member.user.id, per_user=int(config["MAX_WAITING_REQUESTS_PER_USER"]),
            total=config["MAX_WAITING_REQUESTS"],
        ) as may_wait:  # past the caps: answered at once, as without `wait`
            ended = extensions.run_queue().wait(run.id, wait) if may_wait else None
        if ended is not None:
            return _shown(ended, names), 200, found_at
        # Still going (running, or waiting for a prompt): its status now.
        shown = _as_stored_now(run) if may_wait else run.to_dict()
    else:
        shown = run.to_dict()
    return _shown(shown, names), 200 if is_final(shown["status"]) else 201, found_at


def _as_stored_now(run: Run) -> dict[str, Any]:
    """The run as stored now; as it was read before, if the database cannot be reached:
    the run exists, and a 503 would be retried into a second one."""
    before = run.to_dict()
    try:
        return (db.session.get(Run, run.id, populate_existing=True) or run).to_dict()
    except DBAPIError as error:
        if not db.unreachable(error):
            raise
        db.session.rollback()
        return before


def _shown(run: dict[str, Any], names: Mapping[int, str]) -> dict[str, Any]:
    """The run as the API answers it: with who started it, named from `names` (by id)."""
    user_id = run["user_id"]
    return {**run, "user": {"id": user_id, "name": names[user_id]}}


def _earlier_run(member: MemberContext, key: str | None, fingerprint: str) -> Run | None:
    if key is None:
        return None
    return idempotency.earlier_run(db.session(), member=member, key=key, fingerprint=fingerprint)


@bp.get("/f/<slug>/runs")
@spec.validate(query=RunList, resp=reply(HTTP_200=list_of(RunOut)), tags=TAGS)
def list_runs(slug: str, query: RunList) -> Answer:
    """Recent runs (own; admins see everyone's), newest first; `script_id`, `status`,
    `user_id` and the days `since` and `until` (in `tz`) narrow them, as on the Runs page
    (a value that is none is a 400 naming it).

    Paginated: `limit` (1..200, default 50) rows per page; when more rows follow, the
    `Next-Cursor` header holds the value to send as `cursor` for the next page.
    """
    member = require_member(slug)
    position = paging.decode(query.cursor, kinds=(str, str))
    after = (paging.instant(position[0]), str(position[1])) if position else None
    limit = paging.page_limit(query.limit)
    filters = run_history.RunFilters.parse(query.model_dump())
    if (problem := filters.problem()) is not None:
        raise ValidationError(problem, field="since")
    rows = run_history.list_runs(
        db.session(), member, filters=filters, limit=limit + 1, after=after
    )
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if more else None
    next_position = [last.created_at.isoformat(), last.id] if last else None
    names = run_history.runner_names(db.session(), member, {r.user_id for r in page})
    return paging.with_next([_shown(r.to_dict(), names) for r in page], next_position)


@bp.get("/f/<slug>/runs/<run_id>")
@spec.validate(resp=reply(HTTP_200=RunOut), tags=TAGS)
def get_run(slug: str, run_id: str) -> Answer:
    """One run."""
    member = require_member(slug)
    run = scripts_service.get_run(db.session(), member, run_id)
    return _shown(run.to_dict(), run_history.runner_names(db.session(), member, [run.user_id]))


@bp.post("/f/<slug>/runs/<run_id>/cancel")
@spec.validate(resp=reply(HTTP_200=CancelOut), tags=TAGS)
def cancel_run(slug: str, run_id: str) -> Answer:
    """Cancel a run in any state that has not ended (queued, running, waiting, parked)."""
    member = require_member(slug)
    run = scripts_service.get_run(db.session(), member, run_id)
    cancelling = extensions.run_queue().cancel(run.id)
    db.session.refresh(run)
    return CancelOut(id=run.id, cancelling=cancelling, status=run.status)


@bp.delete("/f/<slug>/runs/<run_id>")
@spec.validate(resp=reply("HTTP_204"), tags=TAGS)
def delete_run(slug: str, run_id: str) -> Answer:
    """Delete a run that has ended (409 while it goes on: cancel it first), with its
    input, output and result: members their own, admins anyone's. Its calls stay in the
    usage."""
    member = require_member(slug)
    scripts_service.delete_run(db.session(), member, run_id)
    db.session.commit()
    return "", 204


@bp.post("/f/<slug>/runs/<run_id>/rerun")
@spec.validate(resp=reply(HTTP_200=RunOut, HTTP_201=RunOut), tags=TAGS)
def rerun(slug: str, run_id: str) -> Answer:
    """Start the run again with the same input: the script as members run it now, or the
    same source for an editor run (scripters). 201 while it runs, 200 if already final."""
    member = require_member(slug)
    old = scripts_service.get_run(db.session(), member, run_id)
    run = scripts_service.create_run(
        db.session(),
        member,
        script_id=old.script_id,
        source=None if old.script_id else old.source,
        run_input=old.input,
        interactive=request.authorization is None,
    )
    db.session.commit()
    extensions.run_queue().submit(run.id)
    names = run_history.runner_names(db.session(), member)  # the member started it
    status = 200 if is_final(run.status) else 201
    return _shown(run.to_dict(), names), status, location("api_runs.get_run", slug=slug,
                                                          run_id=run.id)


@bp.get("/f/<slug>/runs/<run_id>/explain")
@spec.validate(resp=reply(HTTP_200=Explanation), tags=TAGS)
def explain(slug: str, run_id: str) -> Answer:
    """The run's error as a sentence a member can act on (null when it did not fail)."""
    member = require_member(slug)
    run = scripts_service.get_run(db.session(), member, run_id)
    if not run.error_code:
        return Explanation(words=None)
    service = run_history.failing_service(db.session(), run=run)
    return Explanation(words=error_in_words(run.error_code, service, run.error_reason))


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


@bp.post("/f/<slug>/grants/<grant_id>/refuse")
@spec.validate(resp=reply(HTTP_200=GrantRefused), tags=("prompts",))
def refuse_grant(slug: str, grant_id: str) -> Answer:
    """Refuse a sign-in prompt: waiting runs get NoIntegrationGrant."""
    member = require_member(slug)
    grant = db.session.get(Grant, grant_id)
    if grant is None or grant.user_id != member.user.id or grant.facility_id != member.facility.id:
        raise NotFound("no such prompt")
    changed = extensions.grants().resolve(grant.id, "refused")
    return GrantRefused(grant_id=grant.id, state="refused" if changed else grant.state)
