"""Blueprints: thin views that parse input, call a service and commit once."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Attach every blueprint to the app."""
    from app.web import health

    app.register_blueprint(health.bp)
