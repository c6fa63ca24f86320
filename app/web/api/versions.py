"""Versions of a script (list, one with its diff, restore, publish) and duplicating it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from app import db
from app.models import Role, ScriptVersion, User
from app.services import inputs, versions
from app.services import scripts as scripts_service
from app.web.api import paging
from app.web.api.base import api_blueprint, location
from app.web.openapi import Query, QueryInt, spec
from app.web.openapi_answers import LOCATION_HEADER, Answer, list_of, reply
from app.web.security import require_member

bp = api_blueprint("api_versions")
TAGS = ("versions",)


class VersionOut(BaseModel):
    """One saved version of a script: its source, declared inputs, author and whether
    members run it."""

    number: int
    source: str
    inputs: list[dict[str, Any]]
    created_by: str | None
    created_at: str
    published: bool


class DiffLine(BaseModel):
    """One line of a unified diff: add, remove, context or hunk header."""

    kind: str
    text: str


class VersionWithDiff(VersionOut):
    """A version and its diff against an earlier one (`against`, null: none before it)."""

    against: int | None
    diff: list[DiffLine]


class DiffQuery(Query):
    """The version to compare with (default: the one before)."""

    against: QueryInt | None = None


class ScriptCopy(BaseModel):
    """The new script made by duplicating one."""

    id: int
    name: str


def _version_out(version: ScriptVersion, *, published: int | None) -> VersionOut:
    author = db.session.get(User, version.created_by) if version.created_by else None
    return VersionOut(
        number=version.number,
        source=version.source,
        inputs=inputs.fields_from_schema(version.input_schema),
        created_by=author.name if author else None,
        created_at=version.created_at.isoformat(),
        published=version.number == published,
    )


@bp.get("/f/<slug>/scripts/<int:script_id>/versions")
@spec.validate(query=paging.Page, resp=reply(HTTP_200=list_of(VersionOut)), tags=TAGS)
def list_versions(slug: str, script_id: int, query: paging.Page) -> Answer:
    """Every saved version of a script, newest first (scripters).

    Paginated: `limit`, `cursor` (see the `Next-Cursor` header).
    """
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    rows = versions.list_versions(db.session(), script=script)
    page, after = paging.page_of(rows, query, key=lambda v: [-v.number], kinds=(int,))
    published = script.published_version
    return paging.with_next(
        [_version_out(v, published=published).model_dump() for v in page], after
    )


@bp.get("/f/<slug>/scripts/<int:script_id>/versions/<int:number>")
@spec.validate(query=DiffQuery, resp=reply(HTTP_200=VersionWithDiff), tags=TAGS)
def get_version(slug: str, script_id: int, number: int, query: DiffQuery) -> Answer:
    """One version, with its diff against `?against=<number>` (default: the one before)."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    version = versions.get_version(db.session(), script=script, number=number)
    if query.against is None:
        against = versions.previous_version(db.session(), script=script, number=number)
    else:
        against = versions.get_version(db.session(), script=script, number=query.against)
    out = _version_out(version, published=script.published_version)
    return VersionWithDiff(
        **out.model_dump(),
        against=against.number if against else None,
        diff=[
            DiffLine(**line)
            for line in versions.diff_lines(against.source if against else "", version.source)
        ],
    )


@bp.post("/f/<slug>/scripts/<int:script_id>/versions/<int:number>/restore")
@spec.validate(resp=reply(HTTP_200=VersionOut), tags=TAGS)
def restore_version(slug: str, script_id: int, number: int) -> Answer:
    """Make a version the draft again (kept as a new version; scripters)."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    version = versions.restore_version(
        db.session(), script=script, number=number, user_id=member.user.id
    )
    db.session.commit()
    return _version_out(version, published=script.published_version)


@bp.post("/f/<slug>/scripts/<int:script_id>/versions/<int:number>/publish")
@spec.validate(resp=reply(HTTP_200=VersionOut), tags=TAGS)
def publish_version(slug: str, script_id: int, number: int) -> Answer:
    """Members run this version from now on (scripters)."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    version = versions.publish_version(
        db.session(), script=script, number=number, by=member.user.id
    )
    db.session.commit()
    return _version_out(version, published=script.published_version)


@bp.post("/f/<slug>/scripts/<int:script_id>/duplicate")
@spec.validate(resp=reply(HTTP_201=ScriptCopy, sends=(LOCATION_HEADER,)), tags=("scripts",))
def duplicate_script(slug: str, script_id: int) -> Answer:
    """A new unpublished copy of the script's draft (scripters)."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    copy = scripts_service.duplicate_script(db.session(), member, script)
    db.session.commit()
    shown_at = location("api_scripts.get_script", slug=slug, script_id=copy.id)
    return ScriptCopy(id=copy.id, name=copy.name), 201, shown_at
