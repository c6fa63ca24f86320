"""Webhook triggers of a script: secret URLs a third party POSTs to, to start its
published version (`/hooks/<token>`, app.web.hooks). Called "triggers" in the API, as
`/f/<slug>/webhooks` are the facility's outgoing webhooks (events sent to an app)."""

from __future__ import annotations

from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr

from app import db, extensions
from app.errors import ValidationError
from app.models import Role, Script, User, WebhookTrigger
from app.models._types import iso
from app.models.triggers import InputMode, SignatureScheme
from app.services import failure_handler_choice, trigger_signatures
from app.services import scripts as scripts_service
from app.services import triggers as triggers_service
from app.web.api.base import address_of, api_blueprint
from app.web.api.run_models import HandlerError
from app.web.openapi import Body, spec
from app.web.openapi_answers import Answer, ErrorBody, list_of, reply
from app.web.security import require_member

bp = api_blueprint("api_triggers")
TAGS = ("triggers",)
_HANDLER_HELP = (
    "A published script of the facility started once, as the trigger's member, for each"
    " run its URL started that ends `failed` or `timed_out` (not a cancel): trigger"
    " `on_failure`, `handles_run_id` the failed run, input {run_id, status, error_code,"
    " error, attempt, script_id, script_name, schedule_id (null), webhook_trigger_id,"
    " started_at, finished_at, url}. Its own failure starts nothing. Null for none"
)


class TriggerUser(BaseModel):
    """The member a trigger's runs run as (who created it): their id and name."""

    id: int
    name: str


class TriggerRefusal(BaseModel):
    """The last call its URL refused: when, the HTTP status and the error code it was
    answered (e.g. 401 `signature_invalid`, 409 `trigger_paused`, 415
    `unsupported_media_type`, 429 `too_many_attempts`)."""

    at: str
    status: int
    code: str


class TriggerOut(BaseModel):
    """A webhook trigger: its name, who its runs run as, when it was made and last used.
    Never its URL's secret: that is shown once, when it is made."""

    id: int
    script_id: int
    name: str
    runs_as: TriggerUser
    created_at: str | None
    last_used_at: str | None = Field(description="When its URL last started a run (null: never)")
    approved_version: int | None = Field(
        description="The published version its member saw when they made it or last approved"
        " one"
    )
    version_to_approve: int | None = Field(
        description="A version another scripter published since: its URL answers 409 until"
        " the trigger's member approves it (POST .../approve); null when there is none"
    )
    input: InputMode = Field(
        description="What its runs take as `input`: the request's body (body), or"
        " {body, headers, query} (request)"
    )
    signed: bool = Field(
        description="Whether its URL checks each POST's signature (by its `signature`"
        " scheme)"
    )
    signature: SignatureScheme | None = Field(
        description="How each POST must be signed: `github` (X-Hub-Signature-256, with the"
        " signing secret shown once, when the trigger was made), `slack` (Slack's"
        " X-Slack-Signature and X-Slack-Request-Timestamp, with the Slack app's signing"
        " secret pasted then, never shown), `standard` (Standard Webhooks' webhook-id,"
        " webhook-timestamp and webhook-signature, with the sender's whsec_ secret pasted"
        " then, never shown), or null (no signature checked)"
    )
    stopped: str | None = Field(
        description="Why its URL starts no run now (409), in words: the script is not"
        " published, or its member left the facility or lost the scripter role; null when"
        " it starts runs"
    )
    enabled: bool = Field(
        description="False while paused: its URL answers 409 `trigger_paused` and starts"
        " nothing (PATCH `enabled`)"
    )
    paused_at: str | None = Field(description="Since when it is paused; null when it is not")
    last_refused: TriggerRefusal | None = Field(
        description="The last call its URL refused (a body it cannot take, a wrong"
        " signature, paused or stopped, too many calls), so that a sender's failures can"
        " be told apart; null when it refused none"
    )
    refused_count: int = Field(description="How many calls its URL refused in all")
    on_failure_script_id: int | None = Field(description=_HANDLER_HELP)
    on_failure_version_to_approve: int | None = Field(
        description="A version of its on-failure script another scripter published since"
        " its member chose it or last approved the trigger: it starts no run until they"
        " approve the trigger (POST .../approve); null when there is none"
    )
    on_failure_error: HandlerError | None = Field(
        description="Why the last on-failure run could not start (its script deleted,"
        " unpublished, a version its member has not approved, or its inputs refused the"
        " failure), until one starts or the on-failure script is chosen again; null when"
        " none failed"
    )


class TriggerMade(TriggerOut):
    """A new trigger with its URL, shown this once: keep it like a password."""

    url: str = Field(
        description="POST to it to start a run (the only time it is shown: only a hash of"
        " its secret is kept)"
    )
    signing_secret: str | None = Field(
        description="With the `github` signature: the secret to set as the webhook's secret"
        " at the sender, which signs each body with it (X-Hub-Signature-256, as GitHub,"
        " Gitea and Forgejo do). Shown this once, never again: to change it, make a new"
        " trigger. Null otherwise (a pasted Slack or Standard Webhooks secret is never"
        " shown)"
    )


class TriggerCreate(Body):
    """A new trigger; its runs run as the member who creates it."""

    name: StrictStr = Field(
        max_length=triggers_service.MAX_NAME,
        description="What calls it, e.g. `GitHub push` or `Signup form` (1-120 characters)",
    )
    input: InputMode = Field(
        default="body",
        description="What its runs take as `input`: `body` (the JSON object or form"
        " fields) or `request`: `{\"body\", \"headers\" (lower-case names, without"
        " Authorization, Cookie, Proxy-Authorization and the signature), \"query\"}`, so"
        " that a script can tell GitHub's events apart (`x-github-event`). Refused for a"
        " script that declares inputs: the request would not fit them",
    )
    signed: StrictBool = Field(
        default=False,
        description="The same as `signature: \"github\"` (true) or null (false)",
    )
    signature: SignatureScheme | None = Field(
        default=None,
        description="`github`: make a signing secret (shown once, in the answer); every POST"
        " to the URL must then carry `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the"
        " body>` made with it. `slack`: give the Slack app's signing secret in"
        " `signing_secret`; every POST must then carry Slack's `X-Slack-Request-Timestamp`"
        " (within 5 minutes of now) and `X-Slack-Signature: v0=<hex HMAC-SHA256 of"
        " \"v0:{timestamp}:{body}\">`, and a retry of an `event_id` it took starts no"
        " second run. `standard` (the Standard Webhooks spec: Svix, Resend, Clerk, Supabase,"
        " OpenAI...): give the sender's `whsec_...` secret in `signing_secret`; every POST"
        " must then carry `webhook-id`, `webhook-timestamp` (within 5 minutes of now) and"
        " `webhook-signature: v1,<base64 HMAC-SHA256 of \"{id}.{timestamp}.{body}\">` (one"
        " of several, space-separated), and a retry of a `webhook-id` it took starts no"
        " second run. In each case an unsigned, wrongly signed or stale POST is a 401 that"
        " starts nothing. null (the default): no signature checked",
    )
    signing_secret: StrictStr | None = Field(
        default=None,
        description="With `signature: \"slack\"`: the Slack app's Signing Secret (Basic"
        " Information → App Credentials); with `\"standard\"`: the sender's signing secret"
        " (`whsec_` and base64; Supabase's `v1,whsec_...` is taken too). Only with these."
        " Kept encrypted, never shown again",
    )
    on_failure_script_id: StrictInt | None = Field(default=None, description=_HANDLER_HELP)


class TriggerUpdate(Body):
    """What to change of a trigger."""

    enabled: StrictBool | None = Field(
        default=None, description="false pauses its URL, true resumes it"
    )
    on_failure_script_id: StrictInt | None = Field(
        default=None, description=f"{_HANDLER_HELP} (`null` sets none)"
    )


def _shown(trigger: WebhookTrigger, script: Script) -> TriggerOut:
    owner = db.session.get(User, trigger.owner_id)
    assert owner is not None  # a trigger goes with its owner (ON DELETE CASCADE)
    return TriggerOut(
        id=trigger.id,
        script_id=trigger.script_id,
        name=trigger.name,
        runs_as=TriggerUser(id=owner.id, name=owner.name),
        created_at=iso(trigger.created_at),
        last_used_at=iso(trigger.last_used_at),
        approved_version=trigger.approved_version,
        input=trigger.input_mode,  # type: ignore[arg-type]  # a column of InputMode's values
        signed=trigger.signing_secret_enc is not None,
        signature=trigger_signatures.scheme_of(trigger),
        version_to_approve=triggers_service.version_to_approve(db.session(), trigger, script),
        stopped=triggers_service.why_stopped(db.session(), trigger, script),
        enabled=trigger.enabled,
        paused_at=iso(trigger.paused_at),
        last_refused=_refusal(trigger),
        refused_count=trigger.refused_count,
        on_failure_script_id=trigger.on_failure_script_id,
        on_failure_version_to_approve=failure_handler_choice.handler_to_approve(
            db.session(), trigger
        ),
        on_failure_error=HandlerError.of(trigger),
    )


def _asked_scheme(json: TriggerCreate) -> SignatureScheme | None:
    """The signature scheme a new trigger's body asks for: `signature`, or the older
    `signed` (true: GitHub's); a 400 when the two disagree, or a secret is pasted for a
    scheme that takes none."""
    scheme = json.signature
    given = json.model_fields_set
    if "signed" in given and "signature" in given and json.signed != (scheme is not None):
        raise ValidationError(
            "signed and signature disagree: give signature alone (\"github\", \"slack\","
            " \"standard\" or null)",
            field="signature",
        )
    if scheme is None and json.signed:
        scheme = "github"
    if json.signing_secret is not None and scheme not in trigger_signatures.PASTED:
        raise ValidationError(
            "a signing secret is pasted only with signature \"slack\" or \"standard\" (the"
            " sender makes it); with \"github\" this server makes one and shows it once",
            field="signing_secret",
        )
    return scheme


def _refusal(trigger: WebhookTrigger) -> TriggerRefusal | None:
    at = iso(trigger.last_refused_at)
    if at is None or trigger.last_refused_status is None:
        return None
    return TriggerRefusal(
        at=at, status=trigger.last_refused_status, code=trigger.last_refused_code or "error"
    )


@bp.get("/f/<slug>/scripts/<int:script_id>/triggers")
@spec.validate(resp=reply(HTTP_200=list_of(TriggerOut)), tags=TAGS)
def list_triggers(slug: str, script_id: int) -> Answer:
    """The script's webhook triggers, oldest first (scripters and admins), without their
    URLs. Not paginated: a script has at most 10."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    found = triggers_service.list_triggers(db.session(), member, script)
    return [_shown(trigger, script).model_dump() for trigger in found]


@bp.post("/f/<slug>/scripts/<int:script_id>/triggers")
@spec.validate(resp=reply(HTTP_201=TriggerMade, HTTP_400=ErrorBody), tags=TAGS)
def create_trigger(slug: str, script_id: int, json: TriggerCreate) -> Answer:
    """Make a webhook trigger of a published script (scripters and admins): a URL that
    starts its published version as the caller when anyone POSTs to it, with the body (a
    JSON object, or form fields as text) as the run's input. The URL is in this answer
    only: keep it like a password. Its runs are not interactive: a call that needs a
    sign-in raises `no_integration_grant` with reason `not_interactive`. With `signature`
    "github", the answer holds a signing secret too (shown once) and every POST must be
    signed with it; with "slack" or "standard", every POST must be signed by Slack, or by
    the Standard Webhooks sender, with the pasted `signing_secret` (never shown). An
    unpublished script is a 409, and so is a script with 10 triggers already.
    `on_failure_script_id` names a published script of the facility (another facility's
    or an unknown id is a 404, an unpublished one a 409, both naming the field)."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    scheme = _asked_scheme(json)
    trigger, token, secret = triggers_service.create_trigger(
        db.session(),
        member,
        script,
        name=json.name,
        signed_with=extensions.vault() if scheme is not None else None,
        scheme=scheme or "github",
        signing_secret=json.signing_secret,
        input_mode=json.input,
        on_failure_script_id=json.on_failure_script_id,
    )
    db.session.commit()
    made = TriggerMade(
        **_shown(trigger, script).model_dump(),
        url=address_of("hooks.start", token=token),
        signing_secret=secret,
    )
    return made, 201


@bp.post("/f/<slug>/scripts/<int:script_id>/triggers/<int:trigger_id>/approve")
@spec.validate(resp=reply(HTTP_200=TriggerOut), tags=TAGS)
def approve_trigger(slug: str, script_id: int, trigger_id: int) -> Answer:
    """Approve the script's published version for a trigger, and its on-failure script's
    (its creator only: the runs run as them, with their accounts). A version another
    scripter publishes after it was made or last approved does not run from its URL (409)
    until then; versions its creator saved need no approval."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    trigger = triggers_service.get_trigger(db.session(), member, script, trigger_id)
    triggers_service.approve(db.session(), member, script, trigger)
    db.session.commit()
    return _shown(trigger, script)


@bp.patch("/f/<slug>/scripts/<int:script_id>/triggers/<int:trigger_id>")
@spec.validate(resp=reply(HTTP_200=TriggerOut, HTTP_400=ErrorBody), tags=TAGS)
def update_trigger(slug: str, script_id: int, trigger_id: int, json: TriggerUpdate) -> Answer:
    """Pause (`{"enabled": false}`) or resume (`true`) a webhook trigger, as a schedule is,
    or change its on-failure script (`on_failure_script_id`, null for none) (its creator
    or an admin). While paused its URL answers 409 `trigger_paused` to every POST,
    GitHub's ping and Slack's URL check included, and starts nothing; it keeps its URL and
    signing secret. Resuming approves no version. An on-failure script of another
    facility or none is a 404, an unpublished one a 409, both naming the field. A body
    with neither is a 400."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    trigger = triggers_service.get_trigger(db.session(), member, script, trigger_id)
    handler_given = "on_failure_script_id" in json.model_fields_set  # null is a value
    if json.enabled is None and not handler_given:
        raise ValidationError(
            "give enabled (false pauses, true resumes) or on_failure_script_id",
            field="enabled",
        )
    if handler_given:
        triggers_service.set_failure_handler(
            db.session(), member, trigger, json.on_failure_script_id
        )
    if json.enabled is not None:
        triggers_service.set_paused(db.session(), member, trigger, paused=not json.enabled)
    db.session.commit()
    return _shown(trigger, script)


@bp.delete("/f/<slug>/scripts/<int:script_id>/triggers/<int:trigger_id>")
@spec.validate(resp=reply("HTTP_204"), tags=TAGS)
def delete_trigger(slug: str, script_id: int, trigger_id: int) -> Answer:
    """Revoke a webhook trigger (its creator or an admin): its URL answers 404 from now
    on. The runs it started stay in history."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    trigger = triggers_service.get_trigger(db.session(), member, script, trigger_id)
    triggers_service.delete_trigger(db.session(), member, trigger)
    db.session.commit()
    return "", 204
