"""Blueprints: thin views that parse input, call a service and commit once."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Attach every blueprint and the websocket to the app."""
    from app.web import (
        api,
        auth,
        connect,
        headers,
        health,
        limits,
        oauth,
        openapi,
        pages,
        pages_runs,
        throttle,
        ws,
    )

    limits.init_app(app)
    throttle.init_app(app)

    app.register_blueprint(health.bp)
    app.register_blueprint(auth.bp)
    for blueprint in api.BLUEPRINTS:
        app.register_blueprint(blueprint)
    app.register_blueprint(oauth.bp)
    app.register_blueprint(connect.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(pages_runs.bp)
    ws.sock.init_app(app)
    openapi.init_app(app)
    headers.init_app(app)

    from app.web.security import csrf_token, current_identity, sees_error_codes

    app.jinja_env.globals.update(
        csrf_token=csrf_token, current_identity=current_identity, sees_error_codes=sees_error_codes
    )
