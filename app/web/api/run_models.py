"""The runs API's request and response models (app/web/api/runs.py declares its views
with them; the OpenAPI document is generated from them)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    WithJsonSchema,
)

from app.db import MAX_INTEGER
from app.lifecycle import RunStatus
from app.models._types import iso
from app.models.scripts import RunTrigger
from app.services import idempotency, run_filters
from app.services.failure_handler_choice import Holder
from app.services.run_export import MAX_EXPORT_ROWS
from app.web import run_files
from app.web.api import paging
from app.web.openapi import Body, Query, QueryInt
from app.web.openapi_answers import FileAnswer

# The longest a caller may block on POST /runs for the run to finish.
MAX_WAIT_S = 300.0


class HandlerError(BaseModel):
    """Why a schedule's or webhook trigger's on-failure script did not start for a failed
    run, and when."""

    message: str
    at: str | None

    @classmethod
    def of(cls, holder: Holder) -> HandlerError | None:
        """The holder's on_failure_error as shown, or None when none failed."""
        if holder.on_failure_error is None:
            return None
        return cls(message=holder.on_failure_error, at=iso(holder.on_failure_error_at))


class TraceFrame(BaseModel):
    """One frame of the script's own code in an error's traceback. As Python's traceback
    says "[Previous line repeated N more times]", a frame that came again right after
    itself is one frame with `repeated`; a trace too deep to keep whole keeps its outermost
    and innermost frames and says, by `omitted_after`, how many it left out in between."""

    line: int
    name: str
    repeated: int = Field(
        default=0,
        ge=0,
        description="How many more times this same frame (line and function) came right"
        " after it, as in deep recursion; 0 for a frame that came once",
    )
    omitted_after: int = Field(
        default=0,
        ge=0,
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


class ApiCall(BaseModel):
    """An API request to make: its method, absolute URL and JSON body (null: none)."""

    method: Literal["POST"]
    url: str
    body: dict[str, Any] | None


class PromptAnswers(BaseModel):
    """How to answer a prompt through the API (the user may also answer it on a page)."""

    connect_link: ApiCall | None = Field(
        description="Make a connect link for the user, integration and label (this request)"
        " and send the user to its `url`: completing it answers the prompt and the run goes"
        " on; refusing there refuses it. Null when the integration connects no account in a"
        " browser (then connect it with POST .../integrations/<key>/accounts)"
    )
    refuse: ApiCall | None = Field(
        description="Refuse the prompt: the waiting call raises NoIntegrationGrant (reason"
        " `refused`). Only for the user the prompt asks (null for an admin reading another"
        " member's run)"
    )


class RunPrompt(BaseModel):
    """The sign-in prompt a paused run waits for, in the fields of the `grant.required`
    webhook, and how to answer it."""

    grant_id: str = Field(description="The prompt's id (as in `grant.required`)")
    integration: str = Field(description="The key of the integration it needs an account of")
    owner: Literal["user"] = Field(
        description="Whose account: the user's own (who started the run)"
    )
    label: str = Field(description="The account's label (empty: the unlabelled one)")
    reason: str | None = Field(
        description="Why: `missing` (none connected), `needs_reauth` (its sign-in expired)"
    )
    expires_at: str = Field(
        description="When the prompt expires unanswered: the call then raises"
        " NoIntegrationGrant (reason `expired`)"
    )
    account_note: str | None = Field(
        description="In words, for a prompt of the unlabelled account to a user who has the"
        " service connected only under labels: those are used only by scripts that name"
        " them (the page's prompt says it too); null otherwise"
    )
    answer: PromptAnswers


class RunOut(BaseModel):
    """A run, who started it and, once final, its result, output and error."""

    id: str
    script_id: int | None
    version: int | None = Field(
        description="The saved version of the script that ran; null for unsaved source"
    )
    user_id: int
    user: RunUser
    trigger: RunTrigger = Field(
        description="What started the run: a person or an API call (manual), a schedule,"
        " `scriptbox run` on the server (terminal), a POST to one of the script's webhook"
        " triggers (webhook), or a schedule's or webhook trigger's failed run, whose"
        " on-failure script this is (on_failure)"
    )
    schedule_id: int | None = Field(
        description="The schedule that started it (null for manual runs, and once the"
        " schedule is deleted: `trigger` still says schedule)"
    )
    webhook_trigger_id: int | None = Field(
        default=None,
        description="The webhook trigger whose URL started it (null for other runs, and once"
        " the trigger is revoked: `trigger` still says webhook)",
    )
    retry_of: str | None = Field(
        description="The run this one retries: a scheduled run that failed, started again"
        " by its schedule's `retries` (null for any other run)"
    )
    attempt: int = Field(
        description="Which attempt of its due time this run is: 1, or 2 and on for a"
        " schedule's retries"
    )
    handles_run_id: str | None = Field(
        default=None,
        description="The failed run of a schedule or webhook trigger this run was started"
        " for, by its on-failure script (trigger `on_failure`; null for any other run)",
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
    prompt: RunPrompt | None = Field(
        default=None,
        description="While the run is `waiting_for_grant` or `parked`: the sign-in prompt it"
        " waits for and how to answer it; null otherwise",
    )


class RunStart(Body):
    """How a run starts (POST /runs and a rerun): how long to wait for it, whether it may
    ask for a sign-in."""

    wait: float | None = Field(
        default=None,
        allow_inf_nan=False,
        ge=0,
        le=MAX_WAIT_S,
        description="Seconds to hold the request for the run: it answers as soon as the run"
        " ends (200), or pauses for a sign-in (201 with its `prompt`), or when they pass"
        " (201, still going)",
    )
    interactive: StrictBool | None = Field(
        default=None,
        description="true from a page of a signed-in session: a call that needs a sign-in"
        " may prompt on it; ignored with an API token",
    )


class RunCreate(RunStart):
    """What to run (a script id, or source for scripters), its input, and how long to wait."""

    script_id: StrictInt | None = Field(default=None, ge=-MAX_INTEGER, le=MAX_INTEGER)
    source: StrictStr | None = None
    input: Any = None
    # With source (the editor's draft): its declared input fields, unsaved, to check the
    # input against (as a script's `inputs`).
    inputs: list[Any] | None = None


# What `trigger` takes, in the document; RunFilters.parse refuses the rest in its own words.
TriggerName = Annotated[
    StrictStr, WithJsonSchema({"type": "string", "enum": list(run_filters.TRIGGERS)})
]


class RunQuery(Query):
    """The filters of the runs list and its export."""

    script_id: QueryInt | None = None
    status: RunStatus | None = Field(
        default=None, description="Only runs in this status (e.g. failed, waiting_for_grant)"
    )
    trigger: TriggerName | None = Field(
        default=None,
        description=f"Only runs started this way: {', '.join(run_filters.TRIGGERS)} (manual:"
        " a person on a page or an API call; terminal: `scriptbox run` on the server)",
    )
    schedule_id: QueryInt | None = Field(
        default=None, description="Only runs this schedule started (see the schedules tag)"
    )
    webhook_trigger_id: QueryInt | None = Field(
        default=None,
        description="Only runs this webhook trigger started (see the triggers tag)",
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
        default=None,
        description="The time zone of `since` and `until` (Europe/Paris); UTC when absent",
    )


class RunList(RunQuery, paging.Page):
    """Filters, page size and cursor of the runs list."""


class RunExport(RunQuery):
    """The runs list's filters and the file's format."""

    format: Literal["csv", "json"] = Field(
        default="csv",
        description="csv (a header row, then a run a row) or json (JSON Lines: one JSON"
        " object a line, the CSV's columns as keys)",
    )


class RunExportFile(FileAnswer):
    """The runs as a file, newest first, at most as many as `Export-Truncated` says."""

    MEDIA: ClassVar[dict[str, str]] = {
        run_files.MEDIA["csv"]: "format=csv: a header row, then one run a row",
        run_files.MEDIA["json"]: "format=json: one JSON object a line",
    }
    HEADERS: ClassVar[dict[str, str]] = {
        "Content-Disposition": "attachment; the file's name (runs-<slug>.csv or .jsonl)",
        "Export-Total": "How many runs match the filters",
        "Export-Truncated": f"`true` when more runs matched than the {MAX_EXPORT_ROWS:,} a"
        " file holds (it holds the newest); absent otherwise",
    }


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


class Explanation(BaseModel):
    """The run's error as a sentence a member can act on (null when it did not fail)."""

    words: str | None
