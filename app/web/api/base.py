"""What every API module shares: the authenticated blueprint and small lookups."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request, url_for
from sqlalchemy import select

from app import db
from app.errors import NotFound, UnsupportedMediaType
from app.models import Integration
from app.services.context import MemberContext
from app.web.openapi_answers import LOCATION_HEADER
from app.web.security import check_csrf, current_identity, require_member, require_user


def api_blueprint(name: str) -> Blueprint:
    """A blueprint under /api whose every view needs a user (session + CSRF, or API token)."""
    bp = Blueprint(name, __name__, url_prefix="/api")

    @bp.before_request
    def _authenticate() -> None:
        require_user()
        identity = current_identity()
        if identity is not None and identity.via_token:
            # Commit the token's last use (if due) now: a read-only call would roll it back,
            # and a pending write would hold SQLite's lock while the run engine writes.
            db.session.commit()
        check_csrf()
        _insist_on_json()
        slug = (request.view_args or {}).get("slug")
        if slug is not None:
            # Before the body is validated: a stranger learns nothing, not even the schema.
            require_member(str(slug))

    return bp


def _insist_on_json() -> None:
    # A form or multipart body was read as no body at all (a run "without source", a token
    # made from defaults): a body the API cannot read is refused before any view sees it.
    # Bodiless POSTs (rotate-secret, test, cancel) pass whatever their Content-Type says.
    if request.method not in ("POST", "PUT", "PATCH") or request.is_json:
        return
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if (request.content_length or 0) > 0 or chunked:
        raise UnsupportedMediaType(
            "send the body as JSON with Content-Type: application/json", field="body"
        )


def public_address(path: str) -> str:
    """`path` (as the app routes it, without the script root) as an absolute URL under the
    configured PUBLIC_URL. Never the request's Host and scheme: behind a proxy they are its
    upstream's (or whatever a client wrote), and a client that follows the URL with its
    API token would send it there, or over plain http."""
    return f"{str(current_app.config['PUBLIC_URL']).rstrip('/')}{path}"


def address_of(endpoint: str, **values: Any) -> str:
    """The absolute URL of an API endpoint, under PUBLIC_URL (see `public_address`)."""
    return public_address(url_for(endpoint, **values).removeprefix(request.script_root))


def location(endpoint: str, **values: Any) -> dict[str, str]:
    """The `Location` header naming what a POST made: the URL to GET it at (absolute, as
    the lists' `Link` is), so a client follows it without building the path itself. Its
    operation declares it: reply(..., sends=(LOCATION_HEADER,))."""
    return {LOCATION_HEADER: address_of(endpoint, **values)}


def integration_of(member: MemberContext, key: str) -> Integration:
    """The facility's integration with this key, or 404."""
    integration = db.session.scalar(
        select(Integration).where(
            Integration.facility_id == member.facility.id, Integration.key == key
        )
    )
    if integration is None:
        raise NotFound(f"no integration '{key}' in {member.facility.name}")
    return integration
