"""Runs of scripts: start (optionally waiting), list, read, cancel, rerun, explain. Their
models: run_models; their calls: run_calls; refusing a prompt: prompts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import current_app, request
from sqlalchemy.exc import DBAPIError, IntegrityError

from app import db, extensions
from app.errors import ScriptDeleted, ValidationError
from app.lifecycle import is_final, is_paused
from app.models import Role, Run
from app.services import idempotency, run_export, run_filters, run_history
from app.services import scripts as scripts_service
from app.services.context import MemberContext
from app.web import run_files
from app.web.api import paging
from app.web.api.base import api_blueprint, location
from app.web.api.prompts import shown_prompts
from app.web.api.run_models import (
    CancelOut,
    Explanation,
    RunCreate,
    RunExport,
    RunExportFile,
    RunHeaders,
    RunList,
    RunOut,
    RunQuery,
    RunStart,
)
from app.web.limits import waiting_requests
from app.web.openapi import spec
from app.web.openapi_answers import (
    LOCATION_HEADER,
    REPLAYED_HEADER,
    Answer,
    ErrorBody,
    list_of,
    reply,
)
from app.web.security import require_member
from app.web.wording import error_in_words

bp = api_blueprint("api_runs")
TAGS = ("runs",)
# POST /runs' 410, as the document describes it (app.errors.IdempotencyKeyRunDeleted).
IDEMPOTENT_RUN_DELETED = (
    "The Idempotency-Key was used before, and the run it started has been deleted: "
    "send the request with a new key to start another run"
)
# What POST /runs and a rerun answer besides the run: its URL, and on a repeated
# Idempotency-Key `Idempotent-Replayed: true` (the run an earlier request started).
STARTED_HEADERS = (LOCATION_HEADER, REPLAYED_HEADER)


@bp.post("/f/<slug>/runs")
@spec.validate(
    headers=RunHeaders,
    resp=reply(
        HTTP_200=RunOut,
        HTTP_201=RunOut,
        HTTP_410=(ErrorBody, IDEMPOTENT_RUN_DELETED),
        sends=STARTED_HEADERS,
    ),
    tags=TAGS,
)
def create_run(slug: str, json: RunCreate, headers: RunHeaders) -> Answer:
    """Start a run of a script (or of source, for scripters); `wait` seconds to block.

    200 when it finished within `wait`; 201 while it is still going, answered as soon as
    it pauses for a sign-in (`waiting_for_grant`: it needs a person, its `prompt` says
    which and how to answer) rather than when `wait` runs out. Either way `Location` is
    the run's URL, to GET it at. With an `Idempotency-Key`, repeating the request gives
    the run it started, with `Idempotent-Replayed: true` (409 if the key was used with a
    different request, 410 once that run was deleted; `wait` may differ).
    """
    member = require_member(slug)

    def start() -> Run:
        return scripts_service.create_run(
            db.session(),
            member,
            script_id=json.script_id,
            source=json.source,
            run_input=json.input,
            interactive=_may_prompt(json),
            input_fields=json.inputs,
            max_queued=current_app.config["MAX_QUEUED_RUNS_PER_USER"],
        )

    return _started(slug, member, json, headers, start)


def _may_prompt(json: RunStart) -> bool:
    """A run started from a page with an open websocket may prompt; API runs may not."""
    return bool(json.interactive) and request.authorization is None


def _started(
    slug: str,
    member: MemberContext,
    json: RunStart,
    headers: RunHeaders,
    start: Callable[[], Run],
    *,
    asked: Mapping[str, Any] | None = None,
) -> Answer:
    """The answer to a request that starts a run (`start`), as POST /runs and a rerun give
    it: the run an `Idempotency-Key` started before for the same request (its body, and
    what `asked` adds), marked `Idempotent-Replayed`, else a new one; held for `json.wait`
    seconds. The status is the run's either way (200 ended, 201 going on), as a first
    answer's would be: only the header tells a repeat."""
    wait = float(json.wait or 0.0)
    key = headers.idempotency_key
    # `wait` is how long this request blocks, not what it asks for: a retry may change it.
    request_asked = {**(asked or {}), **json.model_dump(exclude={"wait"})}
    fingerprint = idempotency.request_hash(request_asked) if key is not None else ""
    run = _earlier_run(member, key, fingerprint)
    replayed = run is not None
    if run is None:
        try:
            run = start()
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
            replayed = True
        else:
            extensions.run_queue().submit(run.id)
    # The member started it (a repeated key finds only the member's own runs): their name
    # came with the request, so the hot path asks nothing more.
    names = run_history.runner_names(db.session(), member)
    found_at = location("api_runs.get_run", slug=slug, run_id=run.id)
    if replayed:
        found_at[REPLAYED_HEADER] = "true"
    shown = run.to_dict()
    if wait and not is_final(run.status) and not is_paused(run.status):
        config = current_app.config
        with waiting_requests().hold(
            member.user.id,
            per_user=int(config["MAX_WAITING_REQUESTS_PER_USER"]),
            total=config["MAX_WAITING_REQUESTS"],
        ) as may_wait:  # past the caps: answered at once, as without `wait`
            # Until it ends, or pauses for a sign-in: it then waits for a person, and the
            # caller learns so now (its `prompt`) rather than when `wait` runs out.
            settled = extensions.run_queue().wait(run.id, wait) if may_wait else None
        if settled is not None:
            shown = settled
        elif may_wait:  # still going (running, or a prompt answered meanwhile): its status now
            shown = _as_stored_now(run)
    status = 200 if is_final(shown["status"]) else 201
    return _shown(member, [shown], names)[0], status, found_at


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


def _shown(
    member: MemberContext, runs: list[dict[str, Any]], names: Mapping[int, str]
) -> list[dict[str, Any]]:
    """The runs as the API answers them: with who started each, named from `names` (by
    id), and the prompt each that waits for a sign-in waits for (else `prompt` null)."""
    prompts = shown_prompts(member, runs)
    return [
        {
            **run,
            "user": {"id": run["user_id"], "name": names[run["user_id"]]},
            "prompt": prompts.get(run["id"]),
        }
        for run in runs
    ]


def _earlier_run(member: MemberContext, key: str | None, fingerprint: str) -> Run | None:
    if key is None:
        return None
    return idempotency.earlier_run(db.session(), member=member, key=key, fingerprint=fingerprint)


@bp.get("/f/<slug>/runs")
@spec.validate(query=RunList, resp=reply(HTTP_200=list_of(RunOut)), tags=TAGS)
def list_runs(slug: str, query: RunList) -> Answer:
    """Recent runs (own; admins see everyone's), newest first; `script_id`, `status`,
    `trigger`, `schedule_id`, `webhook_trigger_id`, `user_id` and the days `since` and
    `until` (in `tz`) narrow them, as on the Runs page (a value that is none is a 400
    naming it, as is a parameter the list does not take). GET .../runs/export gives them as a file.

    Paginated: `limit` (1..200, default 50) rows per page; when more rows follow, the
    `Next-Cursor` header holds the value to send as `cursor` for the next page.
    """
    member = require_member(slug)
    position = paging.decode(query.cursor, kinds=(str, str))
    after = (paging.instant(position[0]), str(position[1])) if position else None
    limit = paging.page_limit(query.limit)
    filters = _filters(query)
    rows = run_history.list_runs(
        db.session(), member, filters=filters, limit=limit + 1, after=after
    )
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if more else None
    next_position = [last.created_at.isoformat(), last.id] if last else None
    names = run_history.runner_names(db.session(), member, {r.user_id for r in page})
    return paging.with_next(_shown(member, [r.to_dict() for r in page], names), next_position)


@bp.get("/f/<slug>/runs/export")
@spec.validate(query=RunExport, resp=reply(HTTP_200=RunExportFile), tags=TAGS)
def export_runs(slug: str, query: RunExport) -> Answer:
    """The runs the list shows for the same filters, as a file to download: `format=csv`
    (the default) or `json` (JSON Lines). Newest first, and capped (the newest are kept):
    `Export-Total` says how many matched, `Export-Truncated: true` that the file holds
    fewer. Columns: id, script_id, script, version, status, trigger, schedule_id, user_id,
    user, created_at, started_at, finished_at (ISO 8601, UTC), duration_ms, error_code,
    error (in words). No input, output or result (each run's own GET has them); CSV text
    a spreadsheet would read as a formula starts with '.
    """
    member = require_member(slug)
    filters = _filters(query)
    session = db.session()
    total = run_export.count_runs(session, member, filters=filters)
    rows = run_export.export_rows(session, member, filters=filters)
    return run_files.download(rows, kind=query.format, name=f"runs-{slug}", total=total)


def _filters(query: RunQuery) -> run_filters.RunFilters:
    """The list's filters; days that contradict themselves are a 400 saying so."""
    filters = run_filters.RunFilters.parse(query.model_dump())
    if (problem := filters.problem()) is not None:
        raise ValidationError(problem, field="since")
    return filters


@bp.get("/f/<slug>/runs/<run_id>")
@spec.validate(resp=reply(HTTP_200=RunOut), tags=TAGS)
def get_run(slug: str, run_id: str) -> Answer:
    """One run."""
    member = require_member(slug)
    run = scripts_service.get_run(db.session(), member, run_id)
    names = run_history.runner_names(db.session(), member, [run.user_id])
    return _shown(member, [run.to_dict()], names)[0]


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
@spec.validate(
    headers=RunHeaders,
    resp=reply(
        HTTP_200=RunOut,
        HTTP_201=RunOut,
        HTTP_410=(ErrorBody, IDEMPOTENT_RUN_DELETED),
        sends=STARTED_HEADERS,
    ),
    tags=TAGS,
)
def rerun(slug: str, run_id: str, json: RunStart, headers: RunHeaders) -> Answer:
    """Start the run again with the same input: the script as members run it now, or the
    same source for an editor run (scripters); a 409 `script_deleted` for a run of a
    script deleted since. `wait`, `interactive` and `Idempotency-Key` as in POST /runs:
    200 when it finished within `wait`, 201 while it goes on; repeating the request with
    the key gives the run it started, with `Idempotent-Replayed: true` (409 if the key was
    used with another request, 410 once that run was deleted)."""
    member = require_member(slug)

    def start() -> Run:
        old = scripts_service.get_run(db.session(), member, run_id)
        if run_history.script_deleted(old):
            raise ScriptDeleted(
                "This run's script was deleted, so the run cannot be run again: it would run"
                " source nobody can see or edit any more."
            )
        # An editor run (unsaved source, or a saved script's draft: no version) runs its
        # source again; a run of a version, the script as members run it now.
        again_source = old.source if old.version is None and member.can(Role.scripter) else None
        return scripts_service.create_run(
            db.session(),
            member,
            script_id=old.script_id,
            source=old.source if old.script_id is None else again_source,
            run_input=old.input,
            interactive=_may_prompt(json),
            max_queued=current_app.config["MAX_QUEUED_RUNS_PER_USER"],
        )

    # Never the same request as a POST /runs (no body has `rerun_of`), nor as another
    # run's rerun.
    return _started(slug, member, json, headers, start, asked={"rerun_of": run_id})


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
