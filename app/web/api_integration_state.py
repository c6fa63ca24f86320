"""The JSON API for what depends on an integration and switching it off or on (admins).

Same authentication and CSRF rule as `app.web.api`; views parse, call a service, commit once.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from app import db
from app.errors import NotFound, ValidationError
from app.models import Integration, Role
from app.services import integration_dependents
from app.services.context import MemberContext
from app.web.security import check_csrf, require_member, require_user

bp = Blueprint("api_integration_state", __name__, url_prefix="/api")


@bp.before_request
def _authenticate() -> None:
    require_user()
    check_csrf()


def _integration(member: MemberContext, key: str) -> Integration:
    integration = db.session.scalar(
        select(Integration).where(
            Integration.facility_id == member.facility.id, Integration.key == key
        )
    )
    if integration is None:
        raise NotFound(f"no integration '{key}' in {member.facility.name}")
    return integration


@bp.get("/f/<slug>/integrations/<key>/dependents")
def dependents(slug: str, key: str) -> ResponseReturnValue:
    """Scripts that call the integration, its accounts and waiting runs (admins)."""
    member = require_member(slug, Role.admin)
    integration = _integration(member, key)
    data = integration_dependents.dependents(db.session(), integration=integration)
    data["enabled"] = integration.enabled
    return jsonify(data)


@bp.post("/f/<slug>/integrations/<key>/<any(enable, disable):action>")
def switch(slug: str, key: str, action: str) -> ResponseReturnValue:
    """Switch an integration off (scripts' calls are refused) or back on (admins)."""
    member = require_member(slug, Role.admin)
    integration = _integration(member, key)
    if action not in ("enable", "disable"):
        raise ValidationError("enable or disable", field="action")
    integration_dependents.set_enabled(
        db.session(), integration=integration, enabled=action == "enable"
    )
    db.session.commit()
    return jsonify({"key": integration.key, "enabled": integration.enabled})
