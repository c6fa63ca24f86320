"""The protected test API: one set of handlers served as /api (Bearer) and /keyapi (keys)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import Blueprint, Flask, Response, current_app, g, jsonify, redirect, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from . import keyauth
from .state import provider_of

PROTECTOR_KEY = "devprovider.protector"
ITEMS_TOTAL = 12
ITEMS_PER_PAGE = 5


@dataclass(frozen=True)
class Caller:
    """Who is calling the API, whatever the auth mode."""

    auth: str  # "bearer", "api_key" or "basic"
    key: str  # per-caller key for rate-limit state
    username: str | None = None
    client_id: str | None = None
    scope: str | None = None


def _bearer_caller() -> None:
    """Validate the Bearer token through Authlib's ResourceProtector."""
    protector = current_app.extensions[PROTECTOR_KEY]
    # On failure Authlib raises an HTTPException carrying its JSON error body and the
    # WWW-Authenticate header (401 invalid_token for unknown, expired or revoked tokens).
    with protector.acquire() as token:
        g.caller = Caller(
            auth="bearer",
            key="bearer:" + token.access_token,
            username=token.username,
            client_id=token.client_id,
            scope=token.scope,
        )
    provider_of(current_app).stats.increment("api_calls")


def _key_caller() -> Response | None:
    """Validate an API key or Basic credential; answer 401 if it is missing or wrong."""
    config = provider_of(current_app).config
    try:
        cred = keyauth.authenticate(request, config.api_keys, config.basic_users)
    except keyauth.KeyAuthError as error:
        response = jsonify(error=error.error, error_description=error.description)
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Basic realm="devprovider"'
        return response
    g.caller = Caller(auth=cred.kind, key=f"{cred.kind}:{cred.identity}", username=cred.username)
    provider_of(current_app).stats.increment("api_calls")
    return None


def me() -> Response:
    """Who the credential belongs to."""
    caller: Caller = g.caller
    return jsonify(
        username=caller.username, scope=caller.scope, client_id=caller.client_id, auth=caller.auth
    )


def echo(rest: str = "") -> Response:
    """Echo what arrived: method, path, query, every header (lower-cased names), body."""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return jsonify(
        method=request.method,
        path=request.script_root + request.path,
        args=request.args.to_dict(),
        args_list=request.args.to_dict(flat=False),
        headers=headers,
        json=request.get_json(silent=True),
        form=request.form.to_dict(flat=False),
        body=request.get_data(as_text=True),
    )


def status(code: int) -> Response:
    """Answer with the given status and a small JSON body."""
    if not 200 <= code <= 599:
        return Response(status=400)
    if code in (204, 304):
        return Response(status=code)
    response = jsonify(status=code)
    response.status_code = code
    return response


def slow() -> Response:
    """Sleep ?seconds=S (capped) before answering."""
    limit = provider_of(current_app).config.max_slow_seconds
    seconds = min(max(request.args.get("seconds", 1.0, type=float), 0.0), limit)
    time.sleep(seconds)
    return jsonify(slept=seconds)


def ratelimit() -> Response:
    """429 with Retry-After the first time per caller, 200 afterwards."""
    caller: Caller = g.caller
    retry_after = request.args.get("retry_after", 1, type=int)
    if provider_of(current_app).first_rate_limited_call(caller.key):
        response = jsonify(error="rate_limited", retry_after=retry_after)
        response.status_code = 429
        response.headers["Retry-After"] = str(retry_after)
        return response
    return jsonify(ok=True)


def redirect_to() -> WerkzeugResponse:
    """302 to ?to=URL (an open redirect on purpose: clients must guard themselves)."""
    target = request.args.get("to")
    if not target:
        return Response("missing ?to=", status=400)
    return redirect(target, code=302)


def big() -> Response:
    """A body of ?bytes=N bytes (capped)."""
    limit = provider_of(current_app).config.max_big_bytes
    size = min(max(request.args.get("bytes", 1024, type=int), 0), limit)
    return Response(b"x" * size, mimetype="application/octet-stream")


def items() -> Response:
    """A small paged list: ?page=P (from 1), with the next page's URL."""
    page = max(request.args.get("page", 1, type=int), 1)
    start = (page - 1) * ITEMS_PER_PAGE
    ids = range(start + 1, min(start + ITEMS_PER_PAGE, ITEMS_TOTAL) + 1)
    has_next = start + ITEMS_PER_PAGE < ITEMS_TOTAL
    next_url = url_for(".items", page=page + 1, _external=True) if has_next else None
    return jsonify(
        items=[{"id": i, "name": f"item {i}"} for i in ids],
        page=page,
        total=ITEMS_TOTAL,
        next_page=page + 1 if has_next else None,
        next=next_url,
    )


ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _add_routes(bp: Blueprint) -> None:
    bp.add_url_rule("/me", view_func=me)
    bp.add_url_rule("/echo", view_func=echo, methods=ANY_METHOD)
    bp.add_url_rule("/echo/<path:rest>", view_func=echo, methods=ANY_METHOD)
    bp.add_url_rule("/status/<int:code>", view_func=status, methods=ANY_METHOD)
    bp.add_url_rule("/slow", view_func=slow)
    bp.add_url_rule("/ratelimit", view_func=ratelimit)
    bp.add_url_rule("/redirect", view_func=redirect_to)
    bp.add_url_rule("/big", view_func=big)
    bp.add_url_rule("/items", view_func=items)


def register_api(app: Flask) -> None:
    """Mount the handlers twice: /api behind Bearer tokens, /keyapi behind keys or Basic."""
    bearer = Blueprint("api", __name__, url_prefix="/api")
    bearer.before_request(_bearer_caller)
    keyed = Blueprint("keyapi", __name__, url_prefix="/keyapi")
    keyed.before_request(_key_caller)
    for bp in (bearer, keyed):
        _add_routes(bp)
        app.register_blueprint(bp)
