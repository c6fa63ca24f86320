"""Webhook triggers of a script: list, create, pause, approve, revoke (flush, never
commit); a run its URL starts is app.services.trigger_starts.

A trigger is a secret URL (`/hooks/<token>`) that a third party (a form service, a CI
job, GitHub's webhooks) POSTs to, to start the script's published version as the member
who made it. The rules are a schedule's (app.services.schedules): scripters and admins
manage them, only the script's published version runs, and only its creator or an admin
may revoke one; each call checks again that its member may still run it, and that they
saw the published version (they saved it, or approved it since: otherwise any scripter
could publish code that runs as them whenever the third party calls). Only the token's
SHA-256 is stored: the token is shown once, when it is made.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import (
    Conflict,
    Forbidden,
    TriggerStopped,
    ValidationError,
)
from app.integrations.vault import Vault
from app.models import Membership, Role, Script, User, WebhookTrigger
from app.models._types import utcnow
from app.models.triggers import InputMode, SignatureScheme
from app.services import (
    failure_handler_choice,
    people,
    script_parts,
    trigger_signatures,
    versions,
)
from app.services.context import MemberContext

# How many triggers a script may have: one per service that calls it is plenty, and each
# is a URL to keep secret.
MAX_PER_SCRIPT = 10
MAX_NAME = 120  # the column's width
# Tells a trigger's token apart from an API token (sbx_) in a leaked log or a chat.
TOKEN_PREFIX = "sbh_"
# Said for an unknown or revoked token alike: whoever holds a wrong URL learns nothing
# about which it is.
UNKNOWN = (
    "no webhook trigger has this URL: it was revoked, its script deleted, or it was"
    " mistyped. Ask a scripter of the facility for a new one"
)


# A trigger passing the whole request whose script came to declare inputs since.
REQUEST_DOES_NOT_FIT = (
    "this trigger passes the whole request (body, headers and query) as the run's input,"
    " and the script's published version declares inputs that it does not fit: a"
    " scripter of the facility must make a trigger that passes the body, or remove the"
    " declared inputs"
)


def new_token() -> str:
    """A fresh trigger token: 32 random bytes, URL-safe, shown to its maker once."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The SHA-256 of a token, as stored (a lookup by it compares no secret byte by byte)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _require_scripter(member: MemberContext) -> None:
    if not member.can(Role.scripter):
        raise Forbidden("managing webhook triggers needs the scripter role")


def list_triggers(session: Session, member: MemberContext, script: Script) -> list[WebhookTrigger]:
    """The script's triggers, oldest first (scripters and admins)."""
    _require_scripter(member)
    return script_parts.parts_of(session, WebhookTrigger, member, script)


def get_trigger(
    session: Session, member: MemberContext, script: Script, trigger_id: int
) -> WebhookTrigger:
    """One trigger of the script (NotFound for another script's or facility's)."""
    _require_scripter(member)
    return script_parts.part_of(
        session, WebhookTrigger, member, script, trigger_id, missing="no such webhook trigger"
    )


def create_trigger(
    session: Session,
    member: MemberContext,
    script: Script,
    *,
    name: str,
    signed_with: Vault | None = None,
    scheme: SignatureScheme = "github",
    signing_secret: str | None = None,
    input_mode: InputMode = "body",
    on_failure_script_id: int | None = None,
) -> tuple[WebhookTrigger, str, str | None]:
    """A new trigger of a published script that runs as `member`, its token (shown once:
    only its hash is kept) and, when `signed_with` a vault, the signing secret its POSTs
    must be signed with, kept encrypted with that vault: by `scheme` "github", one made
    here (shown once: returned); by "slack" or "standard" (trigger_signatures.PASTED), the
    `signing_secret` its maker pasted, the Slack app's or the sender's whsec_ one (never
    returned: None in its place; a 400 in words when missing or no secret's shape). A 409
    past MAX_PER_SCRIPT. `input_mode` "request" (the run's input is the body, headers and
    query) is refused in words for a script that declares inputs: that input would not fit
    them. `on_failure_script_id` names its on-failure script
    (failure_handler_choice.choose)."""
    _require_scripter(member)
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise ValidationError(
            f"give the trigger a name of 1 to {MAX_NAME} characters, such as the service"
            " that will call it",
            field="name",
        )
    if not script.published:
        raise Conflict(
            "publish the script first: a webhook trigger runs its published version",
            field="script_id",
        )
    if input_mode == "request" and declares_inputs(session, script):
        raise ValidationError(
            "this script declares inputs, and a run's input of the whole request (body,"
            " headers and query) would not fit them: make the trigger with the input"
            " \"body\", or remove the script's declared inputs so that it takes any"
            " JSON object",
            field="input",
        )
    pasted = None
    if signed_with is not None and scheme in trigger_signatures.PASTED:
        pasted = trigger_signatures.pasted_secret(scheme, signing_secret)
    people.hold_facility(session, member.facility.id)  # two creates count one by one
    count = session.scalar(
        select(func.count()).where(WebhookTrigger.script_id == script.id)
    )
    if (count or 0) >= MAX_PER_SCRIPT:
        raise Conflict(
            f"a script has at most {MAX_PER_SCRIPT} webhook triggers: revoke one it no"
            " longer needs"
        )
    token = new_token()
    made = trigger_signatures.new_secret() if signed_with and pasted is None else None
    kept = pasted or made
    trigger = WebhookTrigger(
        facility_id=member.facility.id,
        script_id=script.id,
        owner_id=member.user.id,
        name=name,
        token_hash=token_hash(token),
        approved_version=script.published_version,  # what its member sees now
        signing_secret_enc=signed_with.encrypt(kept) if signed_with and kept else None,
        signature_scheme=scheme if kept else "github",
        input_mode=input_mode,
    )
    failure_handler_choice.choose(session, member, trigger, on_failure_script_id)
    session.add(trigger)
    session.flush()
    return trigger, token, made


def set_paused(
    session: Session, member: MemberContext, trigger: WebhookTrigger, *, paused: bool
) -> WebhookTrigger:
    """Pause a trigger (its URL answers 409 trigger_paused and starts nothing, its URL and
    settings kept) or resume it (its creator or an admin, as for revoking). Resuming
    approves nothing: a version waiting for its member's approval still waits."""
    _require_scripter(member)
    if trigger.owner_id != member.user.id and not member.can(Role.admin):
        raise Forbidden(
            "this trigger runs as the member who created it: only they or an admin may"
            " pause or resume it"
        )
    if paused == (not trigger.enabled):
        return trigger  # as asked already: keeps the time it was paused
    trigger.enabled = not paused
    trigger.paused_at = utcnow() if paused else None
    session.flush()
    return trigger


def set_failure_handler(
    session: Session, member: MemberContext, trigger: WebhookTrigger, script_id: int | None
) -> WebhookTrigger:
    """Name the trigger's on-failure script, or none (its creator or an admin, as for
    pausing): started for each of its runs that ends failed or timed out. Naming it by
    its creator approves its published version; an admin's choice waits for theirs."""
    _require_scripter(member)
    if trigger.owner_id != member.user.id and not member.can(Role.admin):
        raise Forbidden(
            "this trigger runs as the member who created it: only they or an admin may"
            " change its on-failure script"
        )
    failure_handler_choice.choose(session, member, trigger, script_id)
    session.flush()
    return trigger


def delete_trigger(session: Session, member: MemberContext, trigger: WebhookTrigger) -> None:
    """Revoke a trigger (its creator or an admin): its URL answers 404 from now on; the
    runs it started stay in history."""
    _require_scripter(member)
    if trigger.owner_id != member.user.id and not member.can(Role.admin):
        raise Forbidden(
            "this trigger runs as the member who created it: only they or an admin may"
            " revoke it"
        )
    session.delete(trigger)
    session.flush()


def version_to_approve(session: Session, trigger: WebhookTrigger, script: Script) -> int | None:
    """The published version that waits for the trigger's member to approve it before the
    URL starts runs: one another scripter published since they made or last approved the
    trigger (their own versions need no approval). None when there is none."""
    version = versions.unapproved(
        session, script, approved=trigger.approved_version, owner_id=trigger.owner_id
    )
    return version.number if version is not None else None


def why_stopped(session: Session, trigger: WebhookTrigger, script: Script) -> str | None:
    """What keeps the trigger's URL from starting runs now, in words for the facility's
    scripters (its panel: they may know the script and the member), or None. A version to
    approve is said apart (version_to_approve)."""
    if not script.published:
        return "the script is not published: its URL starts runs again once it is"
    if trigger.input_mode == "request" and declares_inputs(session, script):
        return REQUEST_DOES_NOT_FIT
    try:
        runs_as(session, trigger)
    except Conflict as refused:
        return refused.message
    return None


def approve(
    session: Session, member: MemberContext, script: Script, trigger: WebhookTrigger
) -> WebhookTrigger:
    """The trigger's member agrees to run the script's published version as it is now,
    and its on-failure script's (only they may: its runs run as them, with their
    accounts)."""
    _require_scripter(member)
    if trigger.owner_id != member.user.id:
        raise Forbidden(
            "this trigger runs as the member who created it: only they may approve the"
            " version it runs"
        )
    trigger.approved_version = script.published_version
    failure_handler_choice.approve_current(session, trigger)
    session.flush()
    return trigger


def declares_inputs(session: Session, script: Script) -> bool:
    """Whether the script's published version (its draft while there is none) declares
    inputs: a run's input must then fit them."""
    version = versions.published(session, script=script)
    schema = version.input_schema if version is not None else script.input_schema
    return isinstance(schema, dict) and bool(schema.get("properties"))


def runs_as(session: Session, trigger: WebhookTrigger) -> MemberContext:
    """The trigger's member as they are now: still an active scripter of its facility
    (else a 409 saying so: a trigger never runs as someone who could not make it now)."""
    found = session.execute(
        select(User, Membership)
        .join(Membership, Membership.user_id == User.id)
        .where(User.id == trigger.owner_id, Membership.facility_id == trigger.facility_id)
    ).first()
    if found is None or not found[0].is_active:
        raise TriggerStopped(
            "the member this trigger runs as is no longer in the facility: a scripter of"
            " the facility must make a new trigger"
        )
    user, membership = found
    if not membership.role.at_least(Role.scripter):
        raise TriggerStopped(
            "the member this trigger runs as no longer has the scripter role: a scripter"
            " of the facility must make a new trigger"
        )
    return MemberContext(user, membership.facility, membership.role)
