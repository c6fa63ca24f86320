"""The JSON API for usage: calls per integration per month, and the monthly call quota
(admins). Same authentication and CSRF rule as `app.web.api`."""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from app import db
from app.errors import ValidationError
from app.models import Role
from app.services import usage as usage_service
from app.web import inputs
from app.web.security import check_csrf, require_member, require_user

bp = Blueprint("api_usage", __name__, url_prefix="/api")


@bp.before_request
def _authenticate() -> None:
    require_user()
    check_csrf()


@bp.get("/f/<slug>/usage")
def usage(slug: str) -> ResponseReturnValue:
    """This month's calls per integration, the quota, and `months` months of history (admins)."""
    member = require_member(slug, Role.admin)
    raw = request.args.get("months", "6")
    months = inputs.integer(raw, "months")
    if not 1 <= months <= usage_service.MAX_MONTHS:
        raise ValidationError(
            f"months must be from 1 to {usage_service.MAX_MONTHS}", field="months"
        )
    data = usage_service.monthly_usage(db.session(), member.facility)
    data["months"] = usage_service.usage_by_month(db.session(), member.facility, months=months)
    return jsonify(data)


@bp.put("/f/<slug>/usage/quota")
def set_quota(slug: str) -> ResponseReturnValue:
    """Set the facility's monthly call quota (`{"quota": 1000}`), or clear it
    (`{"quota": null}`); calls past it are refused with quota_exceeded (admins)."""
    member = require_member(slug, Role.admin)
    body = inputs.body()
    if "quota" not in body:
        raise ValidationError("send quota: a whole number of calls, or null", field="quota")
    quota = usage_service.set_quota(db.session(), member.facility, body["quota"])
    db.session.commit()
    return jsonify({"quota": quota})
