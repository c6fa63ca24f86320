"""Runs in words (their status; their errors for members, scripters also getting the code,
line and traceback; their integration calls' outcome and account), why a schedule's due
time started no run, and webhook deliveries in words for admins.

The one definition: pages render with it, and each page carries what its scripts need of it
(`for_the_browser`, in base.html's `run-wording` meta tag, read by static/js/wording.js).
"""

from __future__ import annotations

from typing import Any

from app.lifecycle import FINAL, RunStatus

# A run's status badge: its tone (app.css's .ok, .bad, .warn); a status not here has none.
STATUS_TONES: dict[str, str] = {
    RunStatus.SUCCEEDED: "ok",
    RunStatus.FAILED: "bad",
    RunStatus.TIMED_OUT: "bad",
    RunStatus.CANCELLED: "bad",
    RunStatus.QUEUED: "warn",
    RunStatus.WAITING: "warn",
    RunStatus.PARKED: "warn",
}
# A page's run panel whose run the server did not start (not a run's status).
NOT_RUN = "not_run"
# A run's status as its badge (and the Runs page's Status filter) says it: people's words,
# where the API's value is an engineer's (`waiting_for_grant`). One for each RunStatus (a
# test); the pages' scripts get them through for_the_browser.
STATUS_WORDS: dict[str, str] = {
    RunStatus.QUEUED: "queued",
    RunStatus.RUNNING: "running",
    RunStatus.WAITING: "waiting for sign-in",
    RunStatus.PARKED: "parked",
    RunStatus.SUCCEEDED: "succeeded",
    RunStatus.FAILED: "failed",
    RunStatus.TIMED_OUT: "timed out",
    RunStatus.CANCELLED: "cancelled",
    NOT_RUN: "not run",
}

# One sentence per error code; `{service}` is the integration the failing call used.
WORDS: dict[str, str] = {
    "no_integration_grant": "{service} needs your sign-in. Connect your account in "
    "Settings → Integrations, then run the script again.",
    "unknown_integration": "This script uses a service this facility has not set up. "
    "Tell a scripter or admin.",
    "forbidden_destination": "{service} refused a request this script is not allowed to make. "
    "Tell a scripter.",
    "integration_timeout": "{service} did not answer in time. Try again in a moment.",
    "integration_unavailable": "{service} could not be reached. Try again later.",
    "rate_limited": "{service} asked to slow down. Try again in a few minutes.",
    "quota_exceeded": "This facility used its monthly quota of integration calls. "
    "Ask an admin to raise it.",
    "timeout": "The script took too long and was stopped.",
    "cpu_limit": "The script used too much computing time and was stopped.",
    "memory_limit": "The script used too much memory and was stopped.",
    "output_limit": "The script printed or returned too much and was stopped.",
    "call_limit": "The script made too many integration calls and was stopped.",
    "cancelled": "The run was stopped.",
    "interrupted": "The server stopped or lost its database while this ran. Run it again.",
}
# Where the reason changes what to do: the facility's own account is an admin's to connect.
WORDS_BY_REASON: dict[tuple[str, str], str] = {
    ("no_integration_grant", "no_master_account"): "{service} has no facility account yet. "
    "Ask an admin to connect it on the Management page, then run the script again.",
    ("no_integration_grant", "master_needs_reauth"): "The facility's {service} account must "
    "be signed in again. Ask an admin to do it on the Management page, then run the script "
    "again.",
    ("no_integration_grant", "not_interactive"): "{service} needs your sign-in, and this run "
    "could not ask for it (it was not started from an open page). Connect your account in "
    "Settings → Integrations, then run the script again.",
    ("no_integration_grant", "refused"): "You chose not to sign in to {service}. Run the "
    "script again and sign in when asked, or connect your account in Settings → Integrations.",
    ("no_integration_grant", "expired"): "Nobody signed in to {service} in time. Run the "
    "script again and sign in when asked.",
    ("integration_unavailable", "switched_off"): "An admin of this facility switched "
    "{service} off. Ask an admin to switch it on again, then run the script again.",
    ("no_integration_grant", "too_many_prompts"): "{service} needs your sign-in, but you have "
    "too many sign-in prompts open. Answer or refuse them, then run the script again.",
}
# What started a run (app.models.scripts.RunTrigger), as the run's page says it.
TRIGGER_WORDS = {
    "manual": "Manual (page or API)",
    "schedule": "Schedule",
    "terminal": "Terminal (scriptbox run)",
    "webhook": "Webhook trigger",
    # A schedule's or a webhook trigger's run that failed starts it (docs/schedules.md).
    "on_failure": "On failure (a scheduled or webhook run failed)",
}
# What started a run, as the lists mark it after its status ("failed (schedule)"): nothing
# for a run started from a page or the API. One for each RunTrigger (a test).
TRIGGER_MARKS: dict[str, str] = {
    "manual": "",
    "schedule": "schedule",
    "terminal": "terminal",
    "webhook": "webhook",
    "on_failure": "on failure",
}
# Why a schedule's due time started no run, in a few words beside the server's message on
# what to do: the Schedules page's table, and the editor's Schedules panel through the
# API's `last_skip.words`. One for each of app.models.schedules.SKIP_REASONS (a test).
SKIP_WORDS: dict[str, str] = {
    "owner_removed": "its member was removed",
    "owner_demoted": "its member is no longer a scripter",
    "script_unpublished": "the script is not published",
    "script_deleted": "the script was deleted",
    "run_refused": "its input was refused",
    "previous_run_waiting": "its last run is still queued",
    "too_many_queued": "its member has too many runs queued",
    "start_failed": "a server error",
    "script_changed": "a new version waits for its member's approval",
}
# An integration call that got no HTTP status back, as the run page's call table says why
# in a few words: the code the broker logged it with (the run's error, above the table,
# says what to do). One for each code of the script API's integration errors (a test).
CALL_ERROR_WORDS: dict[str, str] = {
    "no_integration_grant": "no sign-in",
    "unknown_integration": "service not set up",
    "forbidden_destination": "not allowed",
    "integration_timeout": "no answer in time",
    "integration_unavailable": "not reached",
    "rate_limited": "asked to slow down",
    "http_error": "service error",
    "invalid_request": "request not valid",
    "quota_exceeded": "monthly quota used up",
    "call_limit": "too many calls",
    "integration_error": "failed",
}
# Reasons only an admin can remedy: no link to a member's own accounts.
ADMIN_REASONS = frozenset({"no_master_account", "master_needs_reauth"})
# Where members connect their own accounts: pages link it where the words name it (the
# words for ADMIN_REASONS never do).
SETTINGS_PLACE = "Settings → Integrations"
# A run with no integration call to list, as its page and the editor's run panel say it
# (no_calls_in_words; the run page says " yet" while it goes on).
NO_CALLS = "This run made no integration calls"
FALLBACK = "The script failed. Tell a scripter what you were doing; they can see the details."


def trigger_in_words(trigger: str) -> str:
    """What started a run, as its page says it."""
    return TRIGGER_WORDS.get(trigger, trigger)


def trigger_mark(trigger: str) -> str:
    """What started a run, as the lists mark it ("" for a run started by hand or the API;
    a trigger stored by a newer server than this one: its words guessed from its name)."""
    return TRIGGER_MARKS.get(trigger, trigger.replace("_", " "))


def call_error_in_words(code: str) -> str:
    """Why an integration call got no HTTP status, in a few words (a code logged by a newer
    server than this one: its words guessed from its name)."""
    return CALL_ERROR_WORDS.get(code) or code.replace("_", " ")


def account_in_words(kind: str | None, *, whose: str) -> str:
    """Which account a call used (CallLog.account_kind), as the run page says it: "the
    facility's account", or `whose` ("your", "Ada's") own, by its label if it has one."""
    if not kind:
        return ""
    if kind == "master":
        return "the facility's account"
    label = kind.removeprefix("label:") if kind.startswith("label:") else ""
    return f"{whose} account “{label}”" if label else f"{whose} account"


def no_calls_in_words(*, final: bool) -> str:
    """A run with no integration call to list, in words ("... yet" while it goes on)."""
    return f"{NO_CALLS}{'' if final else ' yet'}."


def skip_in_words(reason: str) -> str:
    """Why a schedule's due time started no run, in a few words (a reason stored by a newer
    server than this one: as it is)."""
    return SKIP_WORDS.get(reason, reason)


def status_in_words(status: str) -> str:
    """A run's status as its badge says it ("waiting_for_grant": "waiting for sign-in"; a
    status stored by a newer server than this one: its words guessed from its name)."""
    return STATUS_WORDS.get(status) or status.replace("_", " ")


def status_tone(status: str) -> str:
    """The tone of a run's status badge ("ok", "bad", "warn"), or "" for none."""
    return STATUS_TONES.get(status, "")


def for_the_browser(settings_url: str) -> dict[str, Any]:
    """What the pages' scripts put runs into words by (static/js/wording.js), as JSON data:
    the final statuses, each status's words and tone, what the lists mark each trigger with,
    the integration calls' errors and accounts in words,
    the reasons only an admin can remedy,
    and where members connect their own accounts (`settings_url`, Settings → Integrations)."""
    statuses = [str(status) for status in RunStatus] + [NOT_RUN]
    return {
        "final": sorted(str(status) for status in FINAL),
        "status_words": {status: status_in_words(status) for status in statuses},
        "status_tones": {status: status_tone(status) for status in statuses},
        "trigger_marks": dict(TRIGGER_MARKS),
        "call_error_words": dict(CALL_ERROR_WORDS),
        # The call log's accounts (the User column says whose): a label's words with
        # {label} in place of it.
        "account_words": {
            kind: account_in_words(kind, whose="own") for kind in ("master", "user")
        }
        | {"label": account_in_words("label:{label}", whose="own")},
        "admin_reasons": sorted(ADMIN_REASONS),
        "settings_place": SETTINGS_PLACE,
        "settings_url": settings_url,
    }


def error_in_words(code: str | None, service: str | None = None, reason: str | None = None) -> str:
    """A sentence a member can act on, for a run's error code (and its reason)."""
    words = WORDS_BY_REASON.get((code or "", reason or "")) or WORDS.get(code or "", FALLBACK)
    return words.format(service=service or "A service")


def restates_code(code: str | None, message: str | None) -> bool:
    """Whether an error's message already says its code in words ("cancelled": "the run was
    cancelled"): shown with its code, it would say it twice, so it is shown alone."""
    if not code or not message:
        return False
    return code.replace("_", " ").lower() in message.lower()


def times(count: int) -> str:
    """'once', 'twice', '3 times'."""
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def delivery_in_words(
    *, status: str, attempts: int, allowed: int, response_code: int | None
) -> str:
    """What follows a webhook delivery's status on the page, in words an admin can act on:
    retrying "failed 3 times (HTTP 503); attempt 4 of 8" (the page adds when), failed "after
    8 attempts (HTTP 503)". `status` is the shown one (WebhookDelivery.shown_status),
    `allowed` its attempts in all; the last error's words are shown apart."""
    answer = f"HTTP {response_code}" if response_code is not None else "no answer"
    if status == "retrying":
        return f"failed {times(attempts)} ({answer}); attempt {attempts + 1} of {allowed}"
    if status == "delivered":
        return f"on attempt {attempts} ({answer})" if attempts > 1 else f"({answer})"
    if status == "failed":
        return f"after {attempts} attempts ({answer})" if attempts != 1 else f"({answer})"
    return "not tried yet"
