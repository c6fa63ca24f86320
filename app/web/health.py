"""Liveness endpoint."""

from __future__ import annotations

import redis
from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from app import db, extensions

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Answer ok when the database answers (a 503 when it does not); with Redis configured,
    say whether it answers too (runs are sent once it does: the process still serves)."""
    db.session.execute(text("SELECT 1"))
    answer = {"status": "ok"}
    if current_app.config["REDIS_URL"]:
        try:
            extensions.redis_client(current_app).ping()
            answer["redis"] = "ok"
        except redis.RedisError:
            answer["redis"] = "unreachable"
    return jsonify(answer)
