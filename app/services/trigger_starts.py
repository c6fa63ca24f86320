"""A webhook trigger's URL starting a run: the trigger its token names, whether it may
start one now (else a 409 in words for the anonymous caller), and the run it starts as its
member (flush, never commit). The triggers themselves (made, paused, approved) are
app.services.triggers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound, TriggerPaused, TriggerStopped
from app.models import Run, Script, WebhookTrigger
from app.models._types import utcnow
from app.services import queued_runs
from app.services.context import MemberContext
from app.services.scripts import create_run
from app.services.triggers import (
    REQUEST_DOES_NOT_FIT,
    UNKNOWN,
    declares_inputs,
    runs_as,
    token_hash,
    version_to_approve,
)


def find_by_token(session: Session, token: str) -> WebhookTrigger:
    """The trigger whose token this is (paused or not), or NotFound in words. Looked up by
    the token's hash: the database compares hashes, so the time an answer takes says
    nothing about how much of a guess was right."""
    trigger = session.scalar(
        select(WebhookTrigger).where(WebhookTrigger.token_hash == token_hash(token))
    )
    if trigger is None:
        raise NotFound(UNKNOWN)
    return trigger


# What a paused trigger's URL answers (409): to an anonymous caller, so it names neither
# the script nor the member.
PAUSED = (
    "this webhook trigger is paused: it starts no run (and keeps none of this call) until"
    " a scripter of the facility resumes it in the script's Triggers panel"
)


@dataclass(frozen=True)
class Startable:
    """A trigger whose URL may start a run now: the member it runs as and its script."""

    trigger: WebhookTrigger
    member: MemberContext
    script: Script


def startable(session: Session, trigger: WebhookTrigger) -> Startable:
    """The trigger, its member and script when its URL may start a run now; else a 409 in
    words for the anonymous caller (naming no script and no member): TriggerPaused while
    paused, TriggerStopped while the script is unpublished, its member is no longer a
    scripter of the facility, its input no longer fits, or it runs a version its member
    has not seen. A ping or Slack's URL check is answered only past these."""
    if not trigger.enabled:
        raise TriggerPaused(PAUSED)
    member = runs_as(session, trigger)
    script = session.get(Script, trigger.script_id)
    if script is None:  # deleted meanwhile: its triggers go with it
        raise NotFound(UNKNOWN)
    if not script.published:
        raise TriggerStopped(
            "this trigger's script is not published: a scripter of the facility must"
            " publish it again before this trigger starts runs"
        )
    if trigger.input_mode == "request" and declares_inputs(session, script):
        raise TriggerStopped(REQUEST_DOES_NOT_FIT)
    if version_to_approve(session, trigger, script) is not None:
        raise TriggerStopped(
            "a new version of this trigger's script was published by another scripter"
            " since the trigger's maker made or last approved it, and its runs run as"
            " them: the maker must approve it in the script's Triggers panel"
        )
    return Startable(trigger, member, script)


def start_run(
    session: Session,
    ready: Startable,
    *,
    run_input: Any,
    max_queued: int = queued_runs.DEFAULT_MAX_QUEUED,
) -> Run:
    """A queued run of a startable trigger's script as its member, with `run_input`
    checked as the API's `input` is; never interactive (nobody can answer a sign-in
    prompt: a call that needs one fails `not_interactive`)."""
    trigger, member, script = ready.trigger, ready.member, ready.script
    run = create_run(
        session,
        member,
        script_id=script.id,
        source=None,
        run_input=run_input,
        interactive=False,
        webhook_trigger_id=trigger.id,
        max_queued=max_queued,
    )
    trigger.last_used_at = utcnow()
    session.flush()
    return run
