"""OAuth endpoints: the consent page (/authorize), /token (POST or GET) and /revoke."""

from __future__ import annotations

import io

from authlib.oauth2 import OAuth2Error
from flask import (
    Blueprint,
    Request,
    Response,
    current_app,
    jsonify,
    render_template,
    request,
    url_for,
)

from .models import User
from .oauth import DevAuthorizationServer
from .state import provider_of

bp = Blueprint("oauth", __name__)

SERVER_KEY = "devprovider.server"


def _server() -> DevAuthorizationServer:
    server: DevAuthorizationServer = current_app.extensions[SERVER_KEY]
    return server


def _error_page(error: OAuth2Error) -> tuple[str, int]:
    """Errors that must not go back to the client (bad client or redirect URI) are shown."""
    html = render_template(
        "error.html", error=error.error, description=error.get_error_description()
    )
    return html, 400


@bp.get("/authorize")
def authorize_form() -> Response | tuple[str, int]:
    """Show the consent page for a valid authorization request."""
    server = _server()
    try:
        grant = server.get_consent_grant()
    except OAuth2Error as error:
        if error.redirect_uri:
            return server.handle_error_response(None, error)
        return _error_page(error)
    action = url_for(".authorize_decision")
    if request.query_string:
        # The OAuth parameters travel on in the query string, exactly as received.
        action += "?" + request.query_string.decode("ascii", "replace")
    return Response(
        render_template(
            "consent.html",
            client_id=grant.client.get_client_id(),
            scopes=(grant.request.scope or "").split(),
            redirect_uri=grant.redirect_uri,
            users=provider_of(current_app).config.users,
            action=action,
        )
    )


@bp.post("/authorize")
def authorize_decision() -> Response | tuple[str, int]:
    """Approve or deny; Authlib re-validates the request and redirects to the client."""
    server = _server()
    approved = request.form.get("decision") == "approve"
    user = None
    if approved:
        username = request.form.get("username", "")
        if not provider_of(current_app).has_user(username):
            return render_template(
                "error.html", error="unknown_user", description=f"No user {username!r}."
            ), 400
        user = User(username)
    try:
        grant = server.get_consent_grant(end_user=user)
    except OAuth2Error as error:
        if error.redirect_uri:
            return server.handle_error_response(None, error)
        return _error_page(error)
    return server.create_authorization_response(request=grant.request, grant_user=user, grant=grant)


def _as_form_post(req: Request) -> Request:
    """Rebuild a GET token request as the form POST that Authlib's grants read."""
    body = req.query_string
    environ = dict(req.environ)
    environ.update(
        {
            "REQUEST_METHOD": "POST",
            "QUERY_STRING": "",
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
        }
    )
    return Request(environ)


@bp.route("/token", methods=["POST", "GET"])
def token() -> Response:
    """Token endpoint; GET with query parameters is accepted as some providers do."""
    provider = provider_of(current_app)
    provider.stats.increment("token_requests")
    if request.method not in provider.config.token_methods:
        refused = jsonify(
            error="invalid_request",
            error_description=f"the token endpoint does not accept {request.method}",
        )
        refused.status_code = 405
        refused.headers["Allow"] = ", ".join(provider.config.token_methods)
        return refused
    converted = _as_form_post(request) if request.method == "GET" else None
    return _server().create_token_response(converted)


@bp.post("/revoke")
def revoke() -> Response:
    """RFC 7009 token revocation."""
    return _server().create_endpoint_response("revocation")
