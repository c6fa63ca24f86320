"""Server-rendered pages (being built)."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

bp = Blueprint("pages", __name__)


@bp.get("/f/<slug>/scripts")
def scripts(slug: str) -> ResponseReturnValue:
    """The facility's scripts."""
    return slug


@bp.get("/settings/integrations")
def settings_integrations() -> ResponseReturnValue:
    """The user's accounts."""
    return ""
