"""The JSON API for script versions (list, one, diff, restore, publish) and duplicates.

Same authentication and CSRF rule as `app.web.api`; views parse, call a service, commit once.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from app import db
from app.models import Role, ScriptVersion, User
from app.services import inputs, versions
from app.services import scripts as scripts_service
from app.services.run_history import parse_int
from app.web.security import check_csrf, require_member, require_user

bp = Blueprint("api_versions", __name__, url_prefix="/api")


@bp.before_request
def _authenticate() -> None:
    require_user()
    check_csrf()


def _version_dict(version: ScriptVersion, *, published: int | None) -> dict[str, Any]:
    author = db.session.get(User, version.created_by) if version.created_by else None
    return {
        "number": version.number,
        "source": version.source,
        "inputs": inputs.fields_from_schema(version.input_schema),
        "created_by": author.name if author else None,
        "created_at": version.created_at.isoformat(),
        "published": version.number == published,
    }


@bp.get("/f/<slug>/scripts/<int:script_id>/versions")
def list_versions(slug: str, script_id: int) -> ResponseReturnValue:
    """Every saved version of a script, newest first (scripters)."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    rows = versions.list_versions(db.session(), script=script)
    return jsonify([_version_dict(v, published=script.published_version) for v in rows])


@bp.get("/f/<slug>/scripts/<int:script_id>/versions/<int:number>")
def get_version(slug: str, script_id: int, number: int) -> ResponseReturnValue:
    """One version, with its diff against `?against=<number>` (default: the one before)."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    version = versions.get_version(db.session(), script=script, number=number)
    against_number = parse_int(request.args.get("against"), "against")
    if against_number is None:
        against = db.session.scalar(
            select(ScriptVersion)
            .where(ScriptVersion.script_id == script.id, ScriptVersion.number < number)
            .order_by(ScriptVersion.number.desc())
            .limit(1)
        )
    else:
        against = versions.get_version(db.session(), script=script, number=against_number)
    data = _version_dict(version, published=script.published_version)
    data["against"] = against.number if against else None
    data["diff"] = versions.diff_lines(against.source if against else "", version.source)
    return jsonify(data)


@bp.post("/f/<slug>/scripts/<int:script_id>/versions/<int:number>/restore")
def restore_version(slug: str, script_id: int, number: int) -> ResponseReturnValue:
    """Make a version the draft again (kept as a new version)."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    version = versions.restore_version(
        db.session(), script=script, number=number, user_id=member.user.id
    )
    db.session.commit()
    return jsonify(_version_dict(version, published=script.published_version))


@bp.post("/f/<slug>/scripts/<int:script_id>/versions/<int:number>/publish")
def publish_version(slug: str, script_id: int, number: int) -> ResponseReturnValue:
    """Members run this version from now on."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    version = versions.publish_version(db.session(), script=script, number=number)
    db.session.commit()
    return jsonify(_version_dict(version, published=script.published_version))


@bp.post("/f/<slug>/scripts/<int:script_id>/duplicate")
def duplicate_script(slug: str, script_id: int) -> ResponseReturnValue:
    """A new unpublished copy of the script's draft (scripters)."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    copy = scripts_service.duplicate_script(db.session(), member, script)
    db.session.commit()
    return jsonify({"id": copy.id, "name": copy.name}), 201
