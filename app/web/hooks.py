"""`POST /hooks/<token>`: a webhook trigger's URL, called by a third party (a form service,
a CI job, GitHub's webhooks) that cannot send our Authorization header.

No session, no CSRF token and no API token: the token in the path is the credential
(only its hash is stored, app.services.triggers). The run starts as the trigger's member,
not interactive, and the answer says only which run and its status: the caller is
anonymous, so it never sees the run's output or result. The path is redacted in the
logs (app.serving.redact).

A call it refuses (a bad body, a wrong signature, paused or stopped, too many) is traced
on its trigger for the maker to see (app.services.trigger_refusals), whatever refused it.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from app import db, extensions
from app.errors import AppError, NotFound, UnsupportedMediaType, ValidationError, strict_loads
from app.models import Run
from app.services import (
    trigger_deliveries,
    trigger_refusals,
    trigger_signatures,
    trigger_starts,
)
from app.services import triggers as triggers_service
from app.web.throttle import hook_throttle, refusal_tally

log = logging.getLogger(__name__)
bp = Blueprint("hooks", __name__)
# Far longer than a token (sbh_ + 43 characters): a longer one is no token, and is not hashed.
_MAX_TOKEN = 100
FORM = "application/x-www-form-urlencoded"


@bp.post("/hooks/<token>")
def start(token: str) -> ResponseReturnValue:
    """Start a run of the trigger's script with the body as its input; 202 with the run's
    id and status only."""
    if len(token) > _MAX_TOKEN:
        raise NotFound(triggers_service.UNKNOWN)
    session = db.session()
    trigger = trigger_starts.find_by_token(session, token)
    # On the raw bytes, before anything reads the body as JSON or form fields; before the
    # throttle counts the call, so that unsigned calls by whoever learnt the URL spend
    # none of the signed sender's runs a minute.
    trigger_signatures.check(
        trigger,
        vault=extensions.vault(),
        body=request.get_data(cache=True),
        header=request.headers.get,
    )
    # Paused, or stopped (unpublished, its member gone, a version to approve): a 409 that
    # says so, to a ping too, which would otherwise tell the sender that all is well.
    ready = trigger_starts.startable(session, trigger)
    if request.headers.get("X-GitHub-Event", "").strip().lower() == "ping":
        # Sent once when a hook is made at GitHub (Gitea and Forgejo send it too): it
        # checks the URL (and the secret) and is no event to run the script for.
        return jsonify(
            pong=True,
            message="pong: this webhook trigger's URL works. A ping starts no run; each"
            " other event the sender POSTs here starts one",
        ), 200
    hook_throttle().attempt(trigger_id=trigger.id)
    run_input = _body_input()
    if (challenge := _slack_challenge(run_input)) is not None:
        # Slack's Events API checks a new Request URL so, and retries until it hears the
        # challenge back: it is no event to run the script for. A Slack-signed trigger
        # checked its signature above, as Slack signs it too.
        return jsonify(challenge=challenge), 200
    # Slack retries an event (X-Slack-Retry-Num) it heard no answer to in 3 seconds: its
    # event_id, trusted only in a body Slack signed, is the delivery's id; a Standard
    # Webhooks sender's retries carry the webhook-id it signed.
    delivery = trigger_deliveries.delivery_id(
        request.headers.get,
        slack_body=run_input if trigger_signatures.signed_by_slack(trigger) else None,
        signed_header=trigger_signatures.delivery_header(trigger),
    )
    if trigger.input_mode == "request":
        run_input = {"body": run_input, "headers": _headers(), "query": request.args.to_dict()}
    if delivery is not None and (
        first := trigger_deliveries.earlier_run(session, trigger, delivery)
    ):
        return _repeated(first)
    try:
        run = trigger_starts.start_run(
            session,
            ready,
            run_input=run_input,
            max_queued=current_app.config["MAX_QUEUED_RUNS_PER_USER"],
        )
        if delivery is not None:
            trigger_deliveries.remember(session, trigger, delivery, run)
        session.commit()
    except ValidationError as refused:
        raise _for_the_caller(refused) from None
    except IntegrityError:
        # The same delivery raced in on another request: its run is the answer.
        session.rollback()
        if delivery is None:
            raise
        first = trigger_deliveries.earlier_run(session, trigger, delivery)
        if first is None:
            raise
        return _repeated(first)
    extensions.run_queue().submit(run.id)
    return jsonify(run_id=run.id, status=run.status), 202


def _slack_challenge(body: Any) -> str | None:
    """The challenge of Slack's URL verification (`{"type": "url_verification",
    "challenge": "..."}`), or None for any other body."""
    if not isinstance(body, dict) or body.get("type") != "url_verification":
        return None
    challenge = body.get("challenge")
    return challenge if isinstance(challenge, str) else None


@bp.after_request
def _trace_refusal(response: Response) -> Response:
    """A POST the URL refused (trigger_refusals.RECORDED), whatever refused it (the view,
    or the app's checks of the body before it: its size, its text), is recorded on the
    trigger; the answer is the same either way."""
    if request.method != "POST" or response.status_code not in trigger_refusals.RECORDED:
        return response
    token = (request.view_args or {}).get("token")
    if not isinstance(token, str) or len(token) > _MAX_TOKEN:
        return response
    token_hash = triggers_service.token_hash(token)
    count = refusal_tally().take(token_hash)
    if not count:  # a flood: counted, and written with a later refusal
        return response
    said = response.get_json(silent=True)
    error = said.get("error") if isinstance(said, dict) else None
    code = str(error.get("code")) if isinstance(error, dict) else "error"
    session = db.session()
    try:
        session.rollback()  # what the refused call wrote, if anything, is not kept
        trigger_refusals.record(
            session, token_hash=token_hash, status=response.status_code, code=code,
            count=count,
        )
        session.commit()
    except SQLAlchemyError as failure:  # the trace is a help, not the answer: keep that
        session.rollback()
        log.warning("a webhook trigger's refusal was not recorded: %s", failure)
    return response


def _repeated(first: Run) -> ResponseReturnValue:
    """A redelivery's answer: the run its first delivery started (still only its id and
    status), and that nothing new started."""
    return jsonify(run_id=first.id, status=first.status, repeated=True), 202


@bp.get("/hooks/<token>")
def opened(token: str) -> ResponseReturnValue:
    """A GET (the URL opened in a browser, or a service told to GET it): a 405 that says
    what the URL is for, or the POST's 404 for a wrong or revoked one (a POST tells that
    too: a GET tells nothing more). It starts nothing."""
    if len(token) > _MAX_TOKEN:
        raise NotFound(triggers_service.UNKNOWN)
    trigger_starts.find_by_token(db.session(), token)
    error = AppError(
        "this is a webhook trigger's URL: a service starts a run by POSTing to it (a JSON"
        " object, form fields or no body), and opening it in a browser starts nothing."
        " Paste it into the calling service's webhook settings with the method POST, or"
        " try it with curl -X POST and this URL"
    )
    error.code, error.status = "method_not_allowed", 405
    return jsonify(error.to_dict()), 405, {"Allow": "OPTIONS, POST"}


# The URL with a slash after it (a service's form, or a paste, may add one) is the same URL;
# under endpoints of their own, so that url_for builds the URL without it.
bp.add_url_rule("/hooks/<token>/", "start_slashed", start, methods=["POST"])
bp.add_url_rule("/hooks/<token>/", "opened_slashed", opened, methods=["GET"])


def _for_the_caller(refused: ValidationError) -> ValidationError:
    """A run's input refused (too large, or not the script's declared inputs), in words
    for whoever sent the body: they see only the answer (e.g. in a service's delivery
    log), and they cannot change the script."""
    field = str(refused.details.get("field", ""))
    if field != "input" and not field.startswith("input."):
        return refused
    if refused.message.startswith("input is larger"):
        advice = "send a smaller body"
    else:
        advice = (
            "send a body of the fields the script declares, or ask a scripter of the"
            " facility to change its declared inputs (a script that declares none takes"
            " any JSON object)"
        )
    return ValidationError(
        f"the body cannot be this script's input: {refused.message}; {advice}", field=field
    )


# Headers that carry a credential or the body's signature: never in a run's input (it is
# stored, and shown on the run's page). GitLab sends its webhook secret as X-Gitlab-Token;
# other senders their own (X-Api-Key, X-Auth-Token, X-Webhook-Secret, Stripe-Signature):
# a name with one of these words in it is held back too.
_WITHHELD = ("authorization", "cookie", "proxy-authorization", "x-gitlab-token")
_CREDENTIAL_WORDS = (
    "auth", "token", "secret", "signature", "hmac", "password", "api-key", "apikey"
)


def _headers() -> dict[str, str]:
    """The request's headers for a trigger that passes the whole request: lower-case
    names (a repeated one's values joined by ", "), without credentials or signatures."""
    found: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        if key in _WITHHELD or any(word in key for word in _CREDENTIAL_WORDS):
            continue
        found[key] = f"{found[key]}, {value}" if key in found else value
    return found


def _body_input() -> Any:
    """The run's input: a JSON object, form fields (as text; a repeated field's first
    value), or None for no body. Anything else is a 415 in words."""
    # Its length, not its bytes: a form's were read already (app.web's check of text).
    # A chunked body has been given a length (app.web.limits).
    if not request.content_length:
        return None
    kind = request.mimetype
    if kind == "application/json" or kind.endswith("+json"):
        try:
            value = strict_loads(request.get_data(cache=True))
        except ValueError as error:  # malformed, not UTF-8, NaN, too deep
            raise ValidationError(f"the body is not JSON: {error}", field="body") from None
        if not isinstance(value, dict):
            raise ValidationError(
                "send a JSON object ({...}) as the body: its fields become the run's input",
                field="body",
            )
        return value
    if kind == FORM:
        return request.form.to_dict()
    raise UnsupportedMediaType(
        "send a JSON object with Content-Type: application/json, form fields with"
        f" Content-Type: {FORM}, or no body at all",
        field="body",
    )
