"""A script's store (the values its runs keep with `store.set`): see and delete them.

Scripters of the script's facility, as for editing the script; another facility's script
is a 404. Runs write the store; the API only reads it and deletes keys.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app import db
from app.models import Role
from app.models._types import iso
from app.services import script_store
from app.services import scripts as scripts_service
from app.web.api.base import api_blueprint
from app.web.openapi import spec
from app.web.openapi_answers import Answer, reply
from app.web.security import require_member

bp = api_blueprint("api_store")
TAGS = ("scripts",)


class StoreEntryOut(BaseModel):
    """One key of a script's store."""

    key: str
    value: Any = Field(description="The JSON value a run kept with `store.set(key, value)`")
    size: int = Field(description="The value's size as JSON (UTF-8 bytes), what the limit counts")
    updated_at: str | None = Field(description="When a run last set it")


class StoreOut(BaseModel):
    """A script's store: its keys by name, and the store's limits."""

    entries: list[StoreEntryOut]
    max_keys: int = Field(description="The most keys a script's store keeps")
    max_value_bytes: int = Field(description="The largest value (its JSON, in UTF-8 bytes)")


@bp.get("/f/<slug>/scripts/<int:script_id>/store")
@spec.validate(resp=reply(HTTP_200=StoreOut), tags=TAGS)
def get_store(slug: str, script_id: int) -> Answer:
    """The script's store (scripters and admins): every key its runs kept with
    `store.set`, with its value, size and last write, sorted by key. Not paginated: a
    store holds at most 100 keys."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    found = script_store.entries(db.session(), script=script)
    return StoreOut(
        entries=[
            StoreEntryOut(key=entry.key, value=entry.value, size=entry.size,
                          updated_at=iso(entry.updated_at))
            for entry in found
        ],
        max_keys=script_store.MAX_KEYS,
        max_value_bytes=script_store.MAX_VALUE_BYTES,
    )


@bp.delete("/f/<slug>/scripts/<int:script_id>/store")
@spec.validate(resp=reply("HTTP_204"), tags=TAGS)
def clear_store(slug: str, script_id: int) -> Answer:
    """Empty the script's store (scripters and admins): its next run reads no value."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    script_store.clear(db.session(), script=script)
    db.session.commit()
    return "", 204


@bp.delete("/f/<slug>/scripts/<int:script_id>/store/<path:key>")
@spec.validate(resp=reply("HTTP_204"), tags=TAGS)
def delete_store_key(slug: str, script_id: int, key: str) -> Answer:
    """Delete one key of the script's store (scripters and admins; the key URL-encoded);
    a 404 when the store holds no such key."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    script_store.forget(db.session(), script=script, key=key)
    db.session.commit()
    return "", 204
