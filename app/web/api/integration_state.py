"""What depends on an integration, and switching it off or on (admins)."""

from __future__ import annotations

from pydantic import BaseModel

from app import db, extensions
from app.models import Role
from app.services import integration_dependents
from app.web.api.base import api_blueprint, integration_of
from app.web.openapi import spec
from app.web.openapi_answers import Answer, reply
from app.web.security import require_member

bp = api_blueprint("api_integration_state")
TAGS = ("integrations",)


class DependentScript(BaseModel):
    """A script whose draft or published version calls the integration."""

    id: int
    name: str
    published: bool


class Dependents(BaseModel):
    """What switching the integration off or deleting it would touch."""

    scripts: list[DependentScript]
    master_accounts: int
    user_accounts: int
    waiting_runs: int
    enabled: bool


class IntegrationState(BaseModel):
    """Whether scripts may call the integration."""

    key: str
    enabled: bool


@bp.get("/f/<slug>/integrations/<key>/dependents")
@spec.validate(resp=reply(HTTP_200=Dependents), tags=TAGS)
def dependents(slug: str, key: str) -> Answer:
    """Scripts that call the integration, its accounts and waiting runs (admins)."""
    member = require_member(slug, Role.admin)
    integration = integration_of(member, key)
    data = integration_dependents.dependents(db.session(), integration=integration)
    return Dependents(**data, enabled=integration.enabled)


def _switch(slug: str, key: str, *, enabled: bool) -> IntegrationState:
    member = require_member(slug, Role.admin)
    integration = integration_of(member, key)
    integration_dependents.set_enabled(db.session(), integration=integration, enabled=enabled)
    db.session.commit()
    if not enabled:  # runs waiting for a sign-in to it stop waiting: their calls are refused
        extensions.grants().cancel_for_integration(integration.id)
    return IntegrationState(key=integration.key, enabled=integration.enabled)


@bp.post("/f/<slug>/integrations/<key>/enable")
@spec.validate(resp=reply(HTTP_200=IntegrationState), tags=TAGS)
def enable(slug: str, key: str) -> Answer:
    """Switch an integration back on (admins)."""
    return _switch(slug, key, enabled=True)


@bp.post("/f/<slug>/integrations/<key>/disable")
@spec.validate(resp=reply(HTTP_200=IntegrationState), tags=TAGS)
def disable(slug: str, key: str) -> Answer:
    """Switch an integration off: scripts' calls to it are refused (admins)."""
    return _switch(slug, key, enabled=False)
