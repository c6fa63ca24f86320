"""App-wide services bound at start: the vault, the sandbox executor, the event hub.

Each is created unbound and attached to the app in `init_app`, then reached through
the small accessors below (never through module globals).
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from flask import Flask, current_app

from app.integrations.transport import guarded_session
from app.integrations.vault import Vault, load_keys

_start_lock = threading.Lock()


ShutdownHook = Callable[[float], object]


def init_app(app: Flask) -> None:
    """Create the vault, event hub, grant coordinator and run manager (no threads yet)."""
    from app import db
    from app.events import EventHub
    from app.runner import RunManager
    from app.services.grants import GrantCoordinator

    app.extensions["vault"] = Vault(load_keys(app.config["SECRET_KEYS"], app.instance_path))
    hub = EventHub()
    grants = GrantCoordinator(
        session_factory=db.session_factory(app),
        hub=hub,
        timeout_s=float(app.config["GRANT_TIMEOUT_S"]),
    )
    app.extensions["hub"] = hub
    app.extensions["grants"] = grants
    app.extensions["runs"] = RunManager(app, hub, grants)
    # In this order: running runs finish (their pages still open), then pages are closed.
    on_shutdown(app, app.extensions["runs"].drain)
    on_shutdown(app, lambda _timeout: hub.close_all())


def on_shutdown(app: Flask, hook: ShutdownHook) -> None:
    """Call hook(seconds_left) when the server stops gracefully; hooks run in order."""
    app.extensions.setdefault("shutdown_hooks", []).append(hook)


def shutdown(app: Flask, *, timeout: float) -> None:
    """Run the app's shutdown hooks within `timeout` seconds in all (the server calls this)."""
    deadline = time.monotonic() + timeout
    for hook in list(app.extensions.get("shutdown_hooks", ())):
        hook(max(0.0, deadline - time.monotonic()))


def hub(app: Flask | None = None) -> Any:
    """The app's event hub."""
    return (app or current_app).extensions["hub"]


def grants(app: Flask | None = None) -> Any:
    """The app's grant coordinator."""
    return (app or current_app).extensions["grants"]


def runs(app: Flask | None = None) -> Any:
    """The app's run manager."""
    return (app or current_app).extensions["runs"]


def vault(app: Flask | None = None) -> Vault:
    """The app's vault."""
    target: Any = app or current_app
    result: Vault = target.extensions["vault"]
    return result


def outbound(app: Flask | None = None) -> requests.Session:
    """The app's one outbound HTTP transport (checks every dialled address), made on first use.

    Made lazily so the demo can add its own loopback address to PRIVATE_NETWORK_ALLOW
    after the app is created and before anything calls out.
    """
    target: Any = app or current_app
    with _start_lock:
        existing: requests.Session | None = target.extensions.get("outbound")
        if existing is None:
            existing = guarded_session(allow=target.config["PRIVATE_NETWORK_ALLOW"])
            target.extensions["outbound"] = existing
    return existing


def executor(app: Flask | None = None) -> Any:
    """The app's sandbox executor, started on first use and stopped at exit."""
    from sandbox import Executor

    target: Any = app or current_app
    with _start_lock:
        existing = target.extensions.get("sandbox")
        if existing is None:
            existing = Executor(
                idle_workers=int(target.config["IDLE_WORKERS"]),
                hash_seed=int(target.config["HASH_SEED"]),
            ).start()
            target.extensions["sandbox"] = existing
            atexit.register(existing.close)
    return existing
