"""One error vocabulary: AppError subclasses with a stable code and HTTP status.

Every error reaches API clients as `{"error": {"code", "message"}}`; pages render the
same message with what to do next.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

# How a size is worded has one owner, the sandbox's: stdlib only, so every layer may use it.
from sandbox import size_in_words


class AppError(Exception):
    """Base of every error the app raises on purpose."""

    code = "error"
    status = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON error shape."""
        return {"error": {"code": self.code, "message": self.message, **self.details}}

    @property
    def whole_message(self) -> str:
        """All the error says, for a page that shows it in one line above its form."""
        return self.message


class ValidationError(AppError):
    """Input that does not fit: a form field, a JSON body, a query parameter."""

    code = "invalid_input"
    status = 400


class InvalidFields(ValidationError):
    """Several fields of one form do not fit, each reported so the form can show them all at
    once: the first as `message` and `field` (the one-error shape every client reads), every
    one under `errors` as {code, message, field}."""

    problems: list[ValidationError]

    def __init__(self, problems: list[ValidationError]) -> None:
        flat = [q for p in problems for q in (p.problems if isinstance(p, InvalidFields) else [p])]
        first = flat[0]
        errors = [{"code": p.code, "message": p.message, **p.details} for p in flat]
        super().__init__(first.message, **first.details, errors=errors)
        self.problems = flat

    @property
    def whole_message(self) -> str:
        """Every problem, each in its words (`message` is the first one's)."""
        return "; ".join(problem.message for problem in self.problems)

    @classmethod
    def of(cls, problems: list[ValidationError]) -> ValidationError:
        """The error to raise for `problems`: a lone one as it is (the answer every client
        knew), several as one InvalidFields."""
        several = cls(problems)
        return several.problems[0] if len(several.problems) == 1 else several


class InvalidSchedule(ValidationError):
    """A schedule's cron expression or time zone is no schedule: a 400 like any wrong input
    (DESIGN §6), with its own code; the message says which field and what it needs."""

    code = "invalid_schedule"


class NotAuthenticated(AppError):
    """No valid session or API token."""

    code = "not_authenticated"
    status = 401


# What every 401 of NotAuthenticated says in WWW-Authenticate: send an API token.
BEARER_CHALLENGE = 'Bearer realm="Scriptbox"'


class SignatureInvalid(AppError):
    """A webhook trigger that checks signatures got a POST without a valid
    X-Hub-Signature-256 of its body: a 401 that starts nothing."""

    code = "signature_invalid"
    status = 401


class Forbidden(AppError):
    """Signed in, but the role or facility does not allow this."""

    code = "forbidden"
    status = 403


class LinkRefused(Forbidden):
    """A connect link that opens no more (expired, used or revoked). `way_back` is the URL
    of the app that sent it, saying why, for the page's button back; an attribute, not a
    detail, so it is never part of the JSON error shape."""

    def __init__(self, message: str, *, way_back: str | None) -> None:
        super().__init__(message)
        self.way_back = way_back


class NotFound(AppError):
    """No such object in this facility (also used to hide other facilities' objects)."""

    code = "not_found"
    status = 404


class Conflict(AppError):
    """The request clashes with the current state (duplicate key, stale state)."""

    code = "conflict"
    status = 409


class TriggerPaused(Conflict):
    """A POST to a webhook trigger's URL while a scripter has paused it: it starts nothing
    until they resume it (the caller is anonymous: the words name no script nor member)."""

    code = "trigger_paused"


class TriggerStopped(Conflict):
    """A POST to a webhook trigger's URL that cannot start its script now: the script is
    not published, its member left or lost the scripter role, a version waits for their
    approval, or the input the trigger passes no longer fits (said in words)."""

    code = "trigger_stopped"


class ScriptDeleted(Conflict):
    """Run again on a run whose saved script was deleted since: it would re-run source
    nobody can see or edit any more, so it is refused in words instead."""

    code = "script_deleted"


class IdempotencyKeyRunDeleted(AppError):
    """A request repeated under an `Idempotency-Key` whose run has been deleted: the key
    is remembered (for the retention), so the retry starts nothing; a new key runs again."""

    code = "idempotency_key_run_deleted"
    status = 410


class OneAccountPerPerson(Conflict):
    """The integration takes one account per person, and this person has one already."""

    code = "one_account_per_person"


class CredentialsRefused(ValidationError):
    """The provider refused typed credentials (API key, password) when they were checked."""

    code = "credentials_refused"
    status = 400


class EditConflict(Conflict):
    """A save of a script's draft begun from an older version than its newest: someone saved
    it since (another tab, another scripter, a restore), and the save would overwrite that
    unseen. Carries `version`, the newest."""

    code = "edit_conflict"


class IllegalTransition(Conflict):
    """A run was asked to move between states the run lifecycle does not connect."""

    code = "illegal_transition"


class OAuthCallbackError(AppError):
    """A forged, stale or reused OAuth callback, or a provider error on sign-in."""

    code = "oauth_callback_invalid"
    status = 400


class ProviderError(AppError):
    """The provider refused a token request; `message` says what it answered."""

    code = "provider_error"
    status = 502


class RevocationFailed(AppError):
    """Disconnecting: the provider refused to revoke the token or could not be reached, so
    the account was kept; the person may retry or remove it anyway."""

    code = "revocation_failed"
    status = 502


class RequestTooLarge(AppError):
    """The request body is larger than MAX_REQUEST_BYTES."""

    code = "request_too_large"
    status = 413


class UnsupportedMediaType(AppError):
    """An API request body that is not sent as JSON (a form, multipart, text): the API
    reads JSON only, and reading anything else as no body at all hid what went wrong."""

    code = "unsupported_media_type"
    status = 415


class TooManyAttempts(AppError):
    """Attempts past a throttle (sign-ins, webhook tests and redeliveries); `retry_after`
    says in how many seconds, and the answer carries it as Retry-After."""

    code = "too_many_attempts"
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class DatabaseUnavailable(AppError):
    """The database cannot be reached right now (a restart, a failover): the request may
    be sent again in `retry_after` seconds."""

    code = "database_unavailable"
    status = 503

    def __init__(self, *, retry_after: int = 5) -> None:
        super().__init__(
            "Scriptbox cannot reach its database right now. Try again in a moment, and tell"
            " the server's operator if this goes on",
            retry_after=retry_after,
        )
        self.retry_after = retry_after


class CheckerUnavailable(AppError):
    """The sandbox could not check a script: it is not running (its zygote is gone) or no
    worker became free in time. Nothing can be published until it answers again."""

    code = "sandbox_unavailable"
    status = 503


class CheckerBusy(CheckerUnavailable):
    """Every place to check scripts in this process stayed taken as long as a check may
    take (app.runner.checks.CHECKS_AT_ONCE)."""

    code = "sandbox_busy"


class TooManyQueuedRuns(AppError):
    """A new run of a user who has as many runs waiting `queued` as the server keeps for
    one person (SCRIPTBOX_MAX_QUEUED_RUNS_PER_USER): refused, not queued behind them.
    Carries `queued` and `limit`; `retry_after` is the answer's Retry-After."""

    code = "too_many_queued_runs"
    status = 429

    def __init__(self, message: str, *, queued: int, limit: int, retry_after: int) -> None:
        super().__init__(message, queued=queued, limit=limit, retry_after=retry_after)
        self.queued = queued
        self.limit = limit
        self.retry_after = retry_after


class QuotaExceeded(AppError):
    """The facility used its monthly call quota."""

    code = "quota_exceeded"
    status = 429


def too_large_message(limit: int) -> str:
    """What a 413 says: the limit as people read it ("1 MiB", not 1048576 bytes) and what
    to do. It is said before the body is read (a program's JSON or a page's form alike), so
    it names both ways of sending less."""
    size = size_in_words(limit)
    return (
        f"the request is larger than {size}, the most this server accepts: send less than "
        f"{size} (a smaller JSON body, or less text in the form)"
    )


def _wants_json() -> bool:
    # /hooks/ (webhook triggers) answers programs, never a person's browser.
    return (
        request.path.startswith(("/api/", "/hooks/"))
        or request.accept_mimetypes.best == "application/json"
    )


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:24]} is too large; JSON numbers must be finite")
    return number


def _not_json(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number; send finite numbers only")


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # longer than Python reads (sys.get_int_max_str_digits())
        raise ValueError(
            f"a number is too long ({len(text.lstrip('-'))} digits); send numbers of at most"
            f" {sys.get_int_max_str_digits()} digits"
        ) from None


def strict_loads(s: str | bytes, **kwargs: Any) -> Any:
    """`json.loads`, refusing (ValueError, in words) what no database or client can store:
    NaN, Infinity or a number too large for a float (Python reads them; PostgreSQL refuses
    them in a JSON column, and browsers cannot read them back), and a document nested
    deeper than the parser can follow (RecursionError, a 500 if let through)."""
    kwargs.setdefault("parse_float", _finite)
    kwargs.setdefault("parse_int", _whole)
    kwargs.setdefault("parse_constant", _not_json)
    try:
        return json.loads(s, **kwargs)
    except RecursionError as error:
        raise ValueError("the JSON is nested too deeply") from error


class BoundedJSON(DefaultJSONProvider):
    """Flask's JSON, reading request bodies and websocket messages with `strict_loads`:
    what it refuses is malformed JSON (a 400 that says why)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return strict_loads(s, **kwargs)


def init_app(app: Flask) -> None:
    """Register the JSON/HTML error handlers (and the JSON reader they rely on)."""
    app.json = BoundedJSON(app)

    @app.errorhandler(AppError)
    def _app_error(error: AppError) -> tuple[Response | str, int, dict[str, str]]:
        retry_after = getattr(error, "retry_after", None)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        if isinstance(error, NotAuthenticated):
            # RFC 9110: a 401 says how to authenticate (an API token; a browser signs in).
            headers["WWW-Authenticate"] = BEARER_CHALLENGE
        if _wants_json():
            return jsonify(error.to_dict()), error.status, headers
        return render_template("error.html", error=error), error.status, headers

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> tuple[Response | str, int, dict[str, str]]:
        if error.code == RequestEntityTooLarge.code:  # Werkzeug's stream limit tripped
            return _app_error(RequestTooLarge(too_large_message(app.config["MAX_REQUEST_BYTES"])))
        status = error.code or 500
        code = (error.name or "error").lower().replace(" ", "_")
        wrapped = AppError(error.description or error.name)
        wrapped.code, wrapped.status = code, status
        # Werkzeug's own headers, but its Content-Type (ours is JSON or our page): a 405's
        # `Allow` says which methods the URL takes (RFC 9110 requires it).
        headers = {
            name: value for name, value in error.get_headers() if name.lower() != "content-type"
        }
        if _wants_json():
            return jsonify(wrapped.to_dict()), status, headers
        return render_template("error.html", error=wrapped), status, headers
