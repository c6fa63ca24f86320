"""The process's sandbox executor: started on first use, anew after a fork or a lost zygote.

An executor answers the process that started it (its reader thread and its zygote's
control socket live there), so every process keeps its own, recorded with its pid in
`app.extensions`. The factory (`app.extensions`) injects `executor` into the run driver
and the source checker; a server calls `release_executor` before it forks its workers.

Package rule: imports no other `app` module; the factory and the server import it.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading

from flask import Flask, current_app

from sandbox import Executor

log = logging.getLogger(__name__)
_lock = threading.Lock()


def executor(app: Flask | None = None) -> Executor:
    """The app's sandbox executor, started on first use and stopped at exit; started
    anew when its zygote is gone (killed, or out of memory), or every later run of this
    process would fail."""
    target = app or current_app._get_current_object()  # type: ignore[attr-defined]
    with _lock:
        existing: Executor | None = target.extensions.get("sandbox")
        if existing is not None and target.extensions.get("sandbox_pid") != os.getpid():
            # Inherited over a fork (serve's workers fork after --demo published its
            # scripts): its reader thread stayed in the parent, which gets the zygote's
            # new workers, so runs here hung once the inherited idle ones were used.
            # Closing it here lets go of this process's copies only (the zygote and its
            # workers are the parent's, see Executor.close).
            existing.close()
            existing = None
        if existing is not None and not existing.running:
            log.warning("the sandbox's zygote stopped; starting a new one")
            existing.close()
            existing = None
        if existing is None:
            existing = Executor(
                idle_workers=int(target.config["IDLE_WORKERS"]),
                hash_seed=int(target.config["HASH_SEED"]),
            ).start()
            target.extensions["sandbox"] = existing
            target.extensions["sandbox_pid"] = os.getpid()
            atexit.register(existing.close)
    return existing


def release_executor(app: Flask) -> None:
    """Stop the app's sandbox executor, if one started (before a server forks its
    workers, each of which starts its own on first use)."""
    with _lock:
        existing: Executor | None = app.extensions.pop("sandbox", None)
        app.extensions.pop("sandbox_pid", None)
    if existing is not None:
        existing.close()
