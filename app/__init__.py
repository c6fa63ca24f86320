"""Scriptbox web application: `create_app` wires config, database, services and views.

Package rule: views -> services -> models | integrations -> db -> errors/config. `app`
uses the sandbox only through `sandbox/__init__.py`'s `__all__`.
"""

from __future__ import annotations

from typing import Any

from flask import Flask


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build a configured Scriptbox app (nothing happens at import time)."""
    from app import threadsafe_ast

    threadsafe_ast.install()  # before Werkzeug builds a tree for each route
    app = Flask(__name__, instance_relative_config=True, static_folder="../static",
                static_url_path="/static")

    from app import config, db, errors, extensions

    config.load(app, test_config)
    db.init_app(app)
    errors.init_app(app)
    extensions.init_app(app)

    from app import models  # noqa: F401  # registers the mappers
    from app.web import register_blueprints

    register_blueprints(app)
    hops = int(app.config["TRUSTED_PROXY_HOPS"])
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # The client's address (sign-in throttling keys on it) and scheme as the
        # trusted proxies saw them; hops beyond them are the client's own words.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    return app
