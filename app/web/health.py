"""Liveness endpoint."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from app import db

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Answer ok when the database answers."""
    db.session.execute(text("SELECT 1"))
    return jsonify({"status": "ok"})
