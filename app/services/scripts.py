"""Scripts and runs: create, edit, publish, start, list (flush, never commit)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.errors import Conflict, Forbidden, NotFound, ValidationError
from app.lifecycle import RunStatus, is_final
from app.models import CallLog, Run, Script
from app.models._types import new_id, utcnow
from app.models.facilities import Role
from app.models.scripts import RunTrigger
from app.services import inputs, queued_runs, versions
from app.services.context import MemberContext
from sandbox import source_size_error

MAX_INPUT = 256 * 1024
# A script's description, shown on its card (the API documents the same bound; longer is
# refused, never cut).
MAX_DESCRIPTION_LENGTH = 2000
# The most rows one list answer holds (the API refuses a `limit` outside 1..MAX_PAGE).
MAX_PAGE = 200


def create_script(
    session: Session,
    member: MemberContext,
    *,
    name: str,
    source: str = "",
    description: str = "",
    input_fields: list[Any] | None = None,
    published: bool = False,
) -> Script:
    """A new script in the member's facility, kept as version 1 (scripters only)."""
    _require_scripter(member)
    script = Script(facility_id=member.facility.id, created_by=member.user.id, input_schema={})
    session.add(script)
    update_script(
        session,
        member,
        script,
        name=name,
        source=source,
        description=description,
        input_fields=input_fields,
        published=published,
    )
    return script


def update_script(
    session: Session,
    member: MemberContext,
    script: Script,
    *,
    name: str | None = None,
    source: str | None = None,
    description: str | None = None,
    input_fields: list[Any] | None = None,
    published: bool | None = None,
) -> Script:
    """Change a script's draft; every change of source or inputs is kept as a version, and
    publishing publishes the newest one (scripters only)."""
    _require_scripter(member)
    if name is not None:
        name = name.strip()
        if not name or len(name) > 120:
            raise ValidationError("give the script a name of 1 to 120 characters", field="name")
        script.name = name
    if source is not None:
        _check_source(source)
        script.source = source
    if description is not None:
        description = description.strip()
        if len(description) > MAX_DESCRIPTION_LENGTH:
            raise ValidationError(
                f"the description may be at most {MAX_DESCRIPTION_LENGTH:,} characters",
                field="description",
            )
        script.description = description
    if input_fields is not None:
        script.input_schema = inputs.schema_from_fields(input_fields)
    session.flush()
    latest = versions.record_version(session, script=script, user_id=member.user.id)
    if published:
        versions.publish_version(session, script=script, number=latest.number,
                                 by=member.user.id)
    elif published is not None:
        versions.unpublish(session, script=script)
    return script


def duplicate_script(session: Session, member: MemberContext, script: Script) -> Script:
    """A new unpublished copy of the script's draft, named "<name> (copy)"."""
    return create_script(
        session,
        member,
        name=f"{script.name[:113]} (copy)",
        source=script.source,
        description=script.description,
        input_fields=inputs.fields_from_schema(script.input_schema),
    )


def get_script(session: Session, member: MemberContext, script_id: int) -> Script:
    """A script of the member's facility; members see published scripts only."""
    script = session.get(Script, script_id)
    if script is None or script.facility_id != member.facility.id:
        raise NotFound("no such script")
    if not script.published and not member.can(Role.scripter):
        raise NotFound("no such script")
    return script


def list_scripts(session: Session, member: MemberContext) -> list[Script]:
    """The facility's scripts the member may see."""
    query = select(Script).where(Script.facility_id == member.facility.id)
    if not member.can(Role.scripter):
        query = query.where(Script.published.is_(True))
    return list(session.scalars(query.order_by(Script.name)))


def run_forms(session: Session, scripts: list[Script]) -> dict[int, list[dict[str, Any]]]:
    """The declared inputs members fill in for each script: its published version's."""
    forms = {}
    for script in scripts:
        chosen = versions.published(session, script=script)
        schema = chosen.input_schema if chosen else script.input_schema
        forms[script.id] = inputs.fields_from_schema(schema)
    return forms


def delete_script(session: Session, member: MemberContext, script: Script) -> None:
    """Remove a script (its runs stay in history, its calls in the call log and the usage,
    naming no script: SQLite may give its id to the next script made, which must not be
    credited with them)."""
    _require_scripter(member)
    session.execute(
        update(CallLog)
        .where(CallLog.facility_id == script.facility_id, CallLog.script_id == script.id)
        .values(script_id=None)
        .execution_options(synchronize_session=False)
    )
    session.delete(script)
    session.flush()


def check_input_size(run_input: Any) -> None:
    """Refuse a run's input larger than MAX_INPUT bytes as JSON (a 400 naming `input`):
    a run's, and a schedule's, which each of its runs gets."""
    if len(json.dumps(run_input)) > MAX_INPUT:
        raise ValidationError(f"input is larger than {MAX_INPUT} bytes", field="input")


def create_run(
    session: Session,
    member: MemberContext,
    *,
    script_id: int | None,
    source: str | None,
    run_input: Any,
    interactive: bool,
    schedule_id: int | None = None,
    from_terminal: bool = False,
    webhook_trigger_id: int | None = None,
    input_fields: list[Any] | None = None,
    max_queued: int = queued_runs.DEFAULT_MAX_QUEUED,
    retry_of: str | None = None,
    attempt: int = 1,
    handles_run_id: str | None = None,
) -> Run:
    """A queued run of a script, or of raw source (scripters only); `schedule_id` names
    the schedule that started it, `from_terminal` says `scriptbox run` did and
    `webhook_trigger_id` the webhook trigger whose URL did.
    `retry_of` and `attempt` say a schedule's retry of a failed run started it;
    `handles_run_id` that a schedule's failed run did, starting its on-failure script.
    `input_fields`, the editor's unsaved declarations, check the input of such source in
    place of the saved ones. Refused (TooManyQueuedRuns, a
    429) while the member has `max_queued` runs waiting to start: pass the configured
    SCRIPTBOX_MAX_QUEUED_RUNS_PER_USER."""
    version_number: int | None = None
    schema: Any = {}
    if source is not None and not member.can(Role.scripter):
        raise Forbidden(
            "running source that is not a saved script needs the scripter role;"
            " members run the facility's published scripts by id (script_id)"
        )
    if input_fields is not None and source is None:
        raise ValidationError(
            "inputs go with source (the editor's draft): a saved version's run is checked"
            " against the declarations saved with it",
            field="inputs",
        )
    if script_id is not None:
        script = get_script(session, member, script_id)
        if source is not None:
            run_source, schema = source, script.input_schema  # the editor runs its draft
        else:
            # Members run the published version; scripters too, once there is one.
            chosen = versions.published(session, script=script)
            if chosen is None and not script.published:
                _require_scripter(member)
                chosen = versions.latest_version(session, script=script)
            if chosen is None:
                run_source, schema = script.source, script.input_schema
            else:
                run_source, schema = chosen.source, chosen.input_schema
                version_number = chosen.number
    elif source is not None:
        script, run_source = None, source
    else:
        raise ValidationError("give a script_id or source", field="script_id")
    if input_fields is not None:
        schema = inputs.schema_from_fields(input_fields)
    _check_source(run_source)
    check_input_size(run_input)
    run_input = inputs.check_input(schema, run_input)
    values = {
        "id": new_id(),
        "facility_id": member.facility.id,
        "script_id": script.id if script else None,
        "version": version_number,
        "user_id": member.user.id,
        "source": run_source,
        "input": run_input,
        "interactive": interactive,
        "trigger": "on_failure" if handles_run_id is not None else _trigger(
            schedule_id, from_terminal=from_terminal, from_webhook=webhook_trigger_id is not None
        ),
        "schedule_id": schedule_id,
        "webhook_trigger_id": webhook_trigger_id,
        "retry_of": retry_of,
        "attempt": attempt,
        "handles_run_id": handles_run_id,
        "status": str(RunStatus.QUEUED),  # born queued; app.lifecycle moves it from here
        "output": "",
        "calls": 0,
        "cancel_requested": False,
        "created_at": utcnow(),
    }
    # One Core INSERT (the session does not track the run): the ORM's unit of work cost
    # more than the statement itself on the hot path of POST /runs (py-spy). It counts the
    # member's queued runs itself: the cap adds no statement.
    queued_runs.insert_run(session, values, max_queued=max_queued)
    run = Run(**values)
    return run


def get_run(session: Session, member: MemberContext, run_id: str) -> Run:
    """A run of the member's facility: their own, or anyone's for admins."""
    run = session.get(Run, run_id)
    if (
        run is None
        or run.facility_id != member.facility.id
        or (run.user_id != member.user.id and not member.can(Role.admin))
    ):
        # Same words either way: another's run is not told apart from a deleted one.
        raise NotFound("no such run: check the link; old finished runs are deleted")
    return run


def delete_run(session: Session, member: MemberContext, run_id: str) -> None:
    """Delete a run that has ended, with its input, output, result and prompts: the
    member's own, or anyone's for admins. Its calls stay in the call log (the facility's
    usage and quota count them)."""
    run = get_run(session, member, run_id)
    if not is_final(run.status):
        raise Conflict("the run has not ended: stop it first, then delete it")
    session.delete(run)
    session.flush()


def _require_scripter(member: MemberContext) -> None:
    if not member.can(Role.scripter):
        raise Forbidden("editing scripts needs the scripter role")


def _check_source(source: object) -> None:
    if not isinstance(source, str):
        raise ValidationError("source must be text", field="source")
    # The sandbox owns the size cap; the app only refuses early with the same message.
    too_large = source_size_error(source)
    if too_large is not None:
        raise ValidationError(too_large, field="source")


def _trigger(schedule_id: int | None, *, from_terminal: bool, from_webhook: bool) -> RunTrigger:
    """What started a run, as its `trigger` column says it."""
    if schedule_id is not None:
        return "schedule"
    if from_webhook:
        return "webhook"
    return "terminal" if from_terminal else "manual"
