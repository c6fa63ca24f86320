"""App-wide services bound at start: the vault, the sandbox executor, the event hub.

Each is created unbound and attached to the app in `init_app`, then reached through
the small accessors below (never through module globals).
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from flask import Flask, current_app

from app.integrations.vault import Vault, load_keys

_start_lock = threading.Lock()


def init_app(app: Flask) -> None:
    """Create the vault now; the sandbox executor starts on first use."""
    app.extensions["vault"] = Vault(load_keys(app.config["SECRET_KEYS"], app.instance_path))


def vault(app: Flask | None = None) -> Vault:
    """The app's vault."""
    target: Any = app or current_app
    result: Vault = target.extensions["vault"]
    return result


def executor(app: Flask | None = None) -> Any:
    """The app's sandbox executor, started on first use and stopped at exit."""
    from sandbox import Executor

    target: Any = app or current_app
    with _start_lock:
        existing = target.extensions.get("sandbox")
        if existing is None:
            existing = Executor(idle_workers=int(target.config["IDLE_WORKERS"])).start()
            target.extensions["sandbox"] = existing
            atexit.register(existing.close)
    return existing
