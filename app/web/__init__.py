"""Blueprints: thin views that parse input, call a service and commit once."""

from __future__ import annotations

import json
import logging
import re

from flask import Flask, got_request_exception, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from app import db
from app.errors import Conflict, DatabaseUnavailable, ValidationError
from app.integrations.catalog_entry import AUTH_MODE_WORDS
from app.models._types import UNSTORABLE_TEXT
from app.services.secret_destinations import where_secrets_go

log = logging.getLogger(__name__)


def register_blueprints(app: Flask) -> None:
    """Attach every blueprint and the websocket to the app."""
    from app.web import (
        api,
        auth,
        connect,
        headers,
        health,
        hooks,
        limits,
        oauth,
        openapi,
        pages,
        pages_runs,
        pages_schedules,  # noqa: F401 (its views join pages.bp: endpoints stay pages.*)
        pages_settings,  # noqa: F401 (its views join pages.bp: endpoints stay pages.*)
        security,
        throttle,
        wording,
        ws,
    )

    limits.init_app(app)
    throttle.init_app(app)

    @app.before_request
    def _refuse_unstorable_text() -> None:
        # NUL is no character of any text a person types, and PostgreSQL refuses it in
        # text; a lone surrogate is no character at all, and no database stores it: a
        # clear 400 here rather than a database error (a 500) later.
        if request.blueprint == "hooks":
            # Kept as sent before the form is parsed: a trigger checks the signature of the
            # body's raw bytes (app.services.trigger_signatures).
            request.get_data(cache=True)
        fields = [
            *(request.view_args or {}).items(),  # a path segment: /runs/%00
            *request.args.items(multi=True),
            *request.form.items(multi=True),
        ]
        # JSON spells both only as \\u escapes: a body without one is read no further here.
        if request.is_json and _UNSTORABLE_ESCAPE.search(request.get_data(cache=True)):
            body = request.get_json(silent=True)
            fields += body.items() if isinstance(body, dict) else []
        for name, value in fields:
            if _unstorable(name) or _unstorable(value):
                raise ValidationError(
                    "text may not contain NUL (\\u0000) characters or unpaired surrogates"
                    " (\\ud800-\\udfff); send text as UTF-8",
                    field=UNSTORABLE_TEXT.sub("", str(name)),
                )

    got_request_exception.connect(_roll_back_failed_request, app)

    @app.errorhandler(DBAPIError)
    def _database_unreachable(error: DBAPIError) -> ResponseReturnValue:
        if not db.unreachable(error):
            raise error  # a failed statement: the 500 it is
        # A 503 in words: the request was fine and may be sent again.
        _roll_back_failed_request(app)
        log.warning("%s %s: the database cannot be reached (%s)", request.method,
                    request.path, type(error.orig).__name__)
        security.answer_as_signed_out()  # the error page must not ask the database
        return app.handle_user_exception(DatabaseUnavailable())

    @app.errorhandler(IntegrityError)
    def _raced(error: IntegrityError) -> ResponseReturnValue:
        # What the view checked (a free key, a unique name) was taken by a request running
        # at the same moment, a double-click most often: this one's writes are undone.
        db.session.rollback()
        log.info("a write lost a race: %s", error.orig)
        return app.handle_user_exception(Conflict(
            "this was changed at the same moment by another request; reload and try again"))

    app.register_blueprint(health.bp)
    app.register_blueprint(auth.bp)
    for blueprint in api.BLUEPRINTS:
        app.register_blueprint(blueprint)
    app.register_blueprint(hooks.bp)
    app.register_blueprint(oauth.bp)
    app.register_blueprint(connect.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(pages_runs.bp)
    ws.sock.init_app(app)
    openapi.init_app(app)
    headers.init_app(app)

    from app.web.security import csrf_token, current_identity, sees_error_codes

    app.jinja_env.globals.update(
        csrf_token=csrf_token, current_identity=current_identity, sees_error_codes=sees_error_codes
    )
    # Runs in words: the templates and the pages' scripts (base.html's run-wording) alike.
    app.jinja_env.globals.update(
        status_in_words=wording.status_in_words,
        status_tone=wording.status_tone,
        trigger_in_words=wording.trigger_in_words,
        trigger_mark=wording.trigger_mark,
        call_error_in_words=wording.call_error_in_words,
        account_in_words=wording.account_in_words,
        no_calls_in_words=wording.no_calls_in_words,
        run_wording=wording.for_the_browser,
    )
    app.jinja_env.filters["field_label"] = field_label
    app.jinja_env.filters["shown_json"] = shown_json
    # A sign-in mode in words ("api_key": "API key"), as the form that sets it says it.
    app.jinja_env.filters["auth_mode_words"] = lambda mode: AUTH_MODE_WORDS.get(mode, mode)
    app.jinja_env.globals["auth_mode_words"] = AUTH_MODE_WORDS
    # Where connecting an account sends the person and their secret (_secret_destination.html).
    app.jinja_env.globals["where_secrets_go"] = where_secrets_go


def shown_json(value: object) -> str:
    """A run's input or result as a person reads it on its page: indented, keys sorted, its
    characters as they are ("Zoë", "<b>", an emoji). `tojson` wrote them as \\u escapes
    (meant for a script tag, not for reading); the template's autoescape makes it safe. A
    lone surrogate, which UTF-8 cannot carry, stays an escape."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _roll_back_failed_request(_app: Flask, **_extra: object) -> None:
    # An unexpected error (a 500 on its way): a failed statement leaves a PostgreSQL
    # transaction aborted, and the error page reads the database too (who is signed in,
    # their facilities), so it failed as well and the server answered a bare 500.
    try:
        db.session.rollback()
    except SQLAlchemyError as error:  # the connection itself is gone: the page tries anyway
        log.warning("could not roll back a failed request: %s", error)


# How JSON spells NUL or a surrogate (a pair of them is read as one character).
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def _unstorable(value: object) -> bool:
    if isinstance(value, str):
        return UNSTORABLE_TEXT.search(value) is not None
    if isinstance(value, list):
        return any(_unstorable(item) for item in value)
    if isinstance(value, dict):
        return any(_unstorable(key) or _unstorable(item) for key, item in value.items())
    return False


# Words a credential field's name may hold that read as letters, not as a word.
_ACRONYMS = {"api": "API", "id": "ID", "url": "URL", "uri": "URI", "oauth": "OAuth",
             "ssh": "SSH", "pat": "PAT", "sid": "SID"}


def field_label(name: str) -> str:
    """A credential field's name as a person reads it: `api_key` -> "API key"."""
    words = [_ACRONYMS.get(word.lower(), word.lower()) for word in name.split("_") if word]
    if words and words[0] == words[0].lower():
        words[0] = words[0].capitalize()
    return " ".join(words)
