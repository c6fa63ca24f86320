"""Scripts of a facility, and which integrations a source needs."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from app import db
from app.models import Role, Script
from app.models._types import iso
from app.services import inputs as script_inputs
from app.services import readiness as readiness_service
from app.services import scripts as scripts_service
from app.services import versions
from app.web.api import paging
from app.web.api.base import api_blueprint, location
from app.web.openapi import Body, spec
from app.web.openapi_answers import LOCATION_HEADER, Answer, list_of, reply
from app.web.security import require_member

bp = api_blueprint("api_scripts")
TAGS = ("scripts",)

# The limits are the services' (they refuse longer texts from any caller); the description's
# is repeated in the schema so the OpenAPI document shows it.
Description = Annotated[StrictStr, Field(max_length=scripts_service.MAX_DESCRIPTION_LENGTH)]


class ScriptOut(BaseModel):
    """A script; `source` only for scripters."""

    id: int
    name: str
    description: str
    published: bool
    published_version: int | None = None
    # The newest version (0: none yet), in the answer of one script to a scripter: the
    # editor sends it back as an update's base_version.
    version: int | None = None
    updated_at: str | None
    source: str | None = None
    inputs: list[Any] | None = None
    input_schema: Any = None


class ScriptCreate(Body):
    """A new script."""

    name: StrictStr = ""
    source: StrictStr = ""
    description: Description = ""
    # The declared input fields (checked as JSON Schema by the service).
    inputs: list[Any] | None = None
    published: StrictBool | None = None


class ScriptUpdate(Body):
    """The fields to change; absent or null keeps the old value."""

    name: StrictStr | None = None
    source: StrictStr | None = None
    description: Description | None = None
    # The declared input fields (checked as JSON Schema by the service).
    inputs: list[Any] | None = None
    published: StrictBool | None = None
    # The version the edit started from (the answer's `version`; 0 for none): a 409
    # edit_conflict when another was saved since, rather than overwriting it unseen.
    base_version: StrictInt | None = None


class ReadinessQuery(Body):
    """The source to look at."""

    source: StrictStr = ""


class ReadinessItem(BaseModel):
    """One integration the source uses: whether it is known and who has an account."""

    model_config = ConfigDict(extra="allow")
    key: str
    exists: bool
    state: str
    ready: bool
    message: str


def script_out(script: Script, *, with_source: bool, version: int | None = None) -> ScriptOut:
    """The API shape of a script; `version`, its newest, where the caller looked it up."""
    return ScriptOut(
        id=script.id,
        name=script.name,
        description=script.description,
        published=script.published,
        published_version=script.published_version,
        version=version,
        updated_at=iso(script.updated_at),
        source=script.source if with_source else None,
        inputs=script_inputs.fields_from_schema(script.input_schema) if with_source else None,
        input_schema=script.input_schema if with_source else None,
    )


@bp.get("/f/<slug>/scripts")
@spec.validate(query=paging.Page, resp=reply(HTTP_200=list_of(ScriptOut)), tags=TAGS)
def list_scripts(slug: str, query: paging.Page) -> Answer:
    """Scripts the user may see in the facility, by name.

    Paginated: `limit`, `cursor` (see the `Next-Cursor` header).
    """
    member = require_member(slug)
    rows = scripts_service.list_scripts(db.session(), member)
    page, after = paging.page_of(rows, query, key=lambda s: [s.name, s.id], kinds=(str, int))
    scripter = member.can(Role.scripter)
    return paging.with_next([script_out(s, with_source=scripter).model_dump() for s in page], after)


@bp.post("/f/<slug>/scripts")
@spec.validate(resp=reply(HTTP_201=ScriptOut, sends=(LOCATION_HEADER,)), tags=TAGS)
def create_script(slug: str, json: ScriptCreate) -> Answer:
    """Create a script (scripters)."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.create_script(
        db.session(),
        member,
        name=json.name,
        source=json.source,
        description=json.description,
        input_fields=json.inputs,
        published=bool(json.published),
    )
    db.session.commit()
    shown_at = location("api_scripts.get_script", slug=slug, script_id=script.id)
    return script_out(script, with_source=True, version=_newest(script)), 201, shown_at


@bp.get("/f/<slug>/scripts/<int:script_id>")
@spec.validate(resp=reply(HTTP_200=ScriptOut), tags=TAGS)
def get_script(slug: str, script_id: int) -> Answer:
    """One script."""
    member = require_member(slug)
    script = scripts_service.get_script(db.session(), member, script_id)
    scripter = member.can(Role.scripter)
    return script_out(script, with_source=scripter, version=_newest(script) if scripter else None)


@bp.patch("/f/<slug>/scripts/<int:script_id>")
@spec.validate(resp=reply(HTTP_200=ScriptOut), tags=TAGS)
def update_script(slug: str, script_id: int, json: ScriptUpdate) -> Answer:
    """Change name, source, description or published (scripters). With `base_version`,
    a 409 `edit_conflict` if a version other than it is the newest."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    versions.require_newest(db.session(), script=script, base=json.base_version)
    scripts_service.update_script(
        db.session(),
        member,
        script,
        name=json.name,
        source=json.source,
        description=json.description,
        input_fields=json.inputs,
        published=json.published,
    )
    db.session.commit()
    return script_out(script, with_source=True, version=_newest(script))


def _newest(script: Script) -> int:
    """The number of the script's newest version; 0 before its first."""
    latest = versions.latest_version(db.session(), script=script)
    return latest.number if latest is not None else 0


@bp.delete("/f/<slug>/scripts/<int:script_id>")
@spec.validate(resp=reply("HTTP_204"), tags=TAGS)
def delete_script(slug: str, script_id: int) -> Answer:
    """Delete a script (scripters)."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    scripts_service.delete_script(db.session(), member, script)
    db.session.commit()
    return "", 204


@bp.post("/f/<slug>/readiness")
@spec.validate(resp=reply(HTTP_200=list_of(ReadinessItem)), tags=TAGS)
def readiness(slug: str, json: ReadinessQuery) -> Answer:
    """Which integrations a source uses and whether the user or facility has accounts."""
    member = require_member(slug, Role.scripter)
    return readiness_service.integration_readiness(db.session(), member, json.source)
