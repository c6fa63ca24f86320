"""create_provider_app: a standalone Flask app serving the dev OAuth2 provider and its API."""

from __future__ import annotations

import os

from flask import Flask

from .api import PROTECTOR_KEY, register_api
from .config import ProviderConfig
from .endpoints import SERVER_KEY
from .endpoints import bp as oauth_bp
from .oauth import init_oauth
from .state import EXTENSION_KEY, Provider


def create_provider_app(config: ProviderConfig | None = None) -> Flask:
    """Build a provider app; its state is app.extensions["devprovider"] (a Provider)."""
    # Authlib refuses plain http except on loopback hosts. This provider is a local test and
    # demo peer that holds no real credentials, and `serve --demo` may be reached under a
    # non-loopback host name, so plain http is allowed for Authlib in this process.
    # (OAuthlib on the client side has its own switch, which is the client's business.)
    os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

    app = Flask(__name__, static_folder=None)
    provider = Provider(config or ProviderConfig())
    server, protector = init_oauth(app, provider)
    app.extensions[EXTENSION_KEY] = provider
    app.extensions[SERVER_KEY] = server
    app.extensions[PROTECTOR_KEY] = protector
    app.register_blueprint(oauth_bp)
    register_api(app)
    return app
