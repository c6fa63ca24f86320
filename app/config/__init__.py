"""Configuration: defaults, then SCRIPTBOX_* environment variables, validated at start.

This package is the only code that reads the environment. Each module owns one noun's
settings (their defaults, their parsing, their checks); `load` and `validate` here run them
all, and every name other code imports is re-exported here (`from app.config import X`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from app.config import cluster, database, keys, network, runs, web, webhooks
from app.config.cluster import EXECUTORS
from app.config.database import DATABASES
from app.config.keys import PLACEHOLDER_SECRETS
from app.config.network import (
    NEVER_REACHABLE,
    NOT_GLOBALLY_REACHABLE,
    NetworkAllow,
    parse_network_allow,
)
from app.config.rules import ConfigError
from app.config.web import LOCAL_PUBLIC_URL, listening_url
from app.instance import private_folder

__all__ = [
    "DATABASES",
    "DEFAULTS",
    "EXECUTORS",
    "LOCAL_PUBLIC_URL",
    "NEVER_REACHABLE",
    "NOT_GLOBALLY_REACHABLE",
    "PLACEHOLDER_SECRETS",
    "ConfigError",
    "NetworkAllow",
    "listening_url",
    "load",
    "parse_network_allow",
    "validate",
]

# Checked in this order: the first setting that cannot work is the one named.
_NOUNS = (database, web, network, keys, cluster, runs, webhooks)

# Every setting and its default, one noun's after another (a key is owned by one noun).
DEFAULTS: dict[str, Any] = {key: value for noun in _NOUNS for key, value in noun.DEFAULTS.items()}

_LIST_KEYS = ("SECRET_KEYS", "ALLOWED_RETURN_ORIGINS")


def load(app: Flask, test_config: dict[str, Any] | None = None) -> None:
    """Fill app.config from defaults, the environment and test_config, then validate."""
    app.config.from_mapping(DEFAULTS)
    if test_config is None:
        app.config.from_prefixed_env("SCRIPTBOX")
    else:
        app.config.from_mapping(test_config)
    for key in _LIST_KEYS:
        value = app.config.get(key)
        if isinstance(value, str):
            app.config[key] = [item.strip() for item in value.split(",") if item.strip()]
    app.config["PRIVATE_NETWORK_ALLOW"] = parse_network_allow(app.config["PRIVATE_NETWORK_ALLOW"])
    # Set after the environment is read, so only an unset PUBLIC_URL lets `serve` derive it
    # (an operator's http://127.0.0.1:5000 stays, whatever --host says).
    app.config["PUBLIC_URL_DERIVED"] = not app.config["PUBLIC_URL"]
    app.config["PUBLIC_URL"] = app.config["PUBLIC_URL"] or LOCAL_PUBLIC_URL
    if Path(app.instance_path).is_dir():
        private_folder(app.instance_path)  # an older install may have made it 0755
    if not app.config["DATABASE_URL"]:
        folder = private_folder(app.instance_path)
        app.config["DATABASE_URL"] = f"sqlite:///{folder / 'scriptbox.sqlite'}"
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = keys.instance_secret(Path(app.instance_path) / "session.key")
    if app.config["HASH_SEED"] is None:
        app.config["HASH_SEED"] = keys.derived_hash_seed(str(app.config["SECRET_KEY"]))
    app.config["SESSION_COOKIE_SECURE"] = str(app.config["PUBLIC_URL"]).startswith("https://")
    validate(app.config)
    # Werkzeug stops reading a body (also a chunked one) past Flask's MAX_CONTENT_LENGTH.
    app.config["MAX_CONTENT_LENGTH"] = int(app.config["MAX_REQUEST_BYTES"])
    app.config["SOCK_SERVER_OPTIONS"] = {
        "max_message_size": int(app.config["WS_MAX_MESSAGE_BYTES"])
    }


def validate(config: Any) -> None:
    """Refuse to start with settings that cannot work (the first one found is named)."""
    for noun in _NOUNS:
        noun.validate(config)
