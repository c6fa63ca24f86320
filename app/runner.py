"""Runs in the background: one thread per run drives the sandbox and reports over the hub.

The embedded default executes runs in this process (DESIGN §7); requests return at
once and the page follows the run over its websocket.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import Flask
from sqlalchemy import update

from app import db, extensions
from app.events import EventHub
from app.models import Facility, Run, User
from app.models._types import utcnow
from app.services.grants import GrantCoordinator
from sandbox import CANCELLED, Limits, RunResult

log = logging.getLogger(__name__)


def limits_from_config(config: Any) -> Limits:
    """The sandbox limits configured for this app."""
    return Limits(
        wall_time_s=float(config["RUN_WALL_TIME_S"]),
        cpu_time_s=int(config["RUN_CPU_TIME_S"]),
        memory_mb=int(config["RUN_MEMORY_MB"]),
        output_bytes=int(config["RUN_OUTPUT_BYTES"]),
        result_bytes=int(config["RUN_RESULT_BYTES"]),
        max_calls=int(config["RUN_MAX_CALLS"]),
    )


class RunManager:
    """Starts, cancels and awaits runs executed in this process."""

    def __init__(self, app: Flask, hub: EventHub, grants: GrantCoordinator) -> None:
        self._app = app
        self._hub = hub
        self._grants = grants
        self._lock = threading.Lock()
        self._cancel: dict[str, threading.Event] = {}
        self._done: dict[str, threading.Event] = {}
        self._broker: Any = None

    def _get_broker(self) -> Any:
        if self._broker is None:
            from app.integrations.broker import Broker

            self._broker = Broker.from_app(self._app, grant_hook=self._grants.request)
        return self._broker

    def start(self, run_id: str) -> None:
        """Execute the queued run in a background thread."""
        with self._lock:
            self._cancel[run_id] = threading.Event()
            self._done[run_id] = threading.Event()
        thread = threading.Thread(
            target=self.run_sync, args=(run_id,), name=f"run-{run_id[:8]}", daemon=True
        )
        thread.start()

    def wait(self, run_id: str, timeout: float) -> bool:
        """Block until the run finishes or `timeout` passes; True if it finished here."""
        with self._lock:
            done = self._done.get(run_id)
        return done.wait(timeout) if done is not None else False

    def drain(self, timeout: float) -> bool:
        """Wait for every run of this process to finish; False if some still run at the end."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                running = list(self._done.values())
            if not running:
                return True
            for done in running:
                if not done.wait(max(0.0, deadline - time.monotonic())):
                    log.warning("stopping with %d run(s) still running", len(running))
                    return False

    def cancel(self, run_id: str) -> bool:
        """Ask a running run to stop; False if this process is not running it."""
        with self._lock:
            event = self._cancel.get(run_id)
        if event is None:
            return False
        event.set()
        self._grants.cancel_run(run_id)
        return True

    def _publish(self, run: Run, message: dict[str, Any]) -> None:
        self._hub.publish(run.user_id, run.facility_id, {"run_id": run.id, **message})

    def run_sync(self, run_id: str) -> RunResult | None:
        """Execute a queued run in this thread and store its outcome (None if it vanished)."""
        with self._lock:
            self._cancel.setdefault(run_id, threading.Event())
            self._done.setdefault(run_id, threading.Event())
        factory = db.session_factory(self._app)
        outcome = None
        try:
            with factory() as session, session.begin():
                run = session.get(Run, run_id)
                if run is None:
                    return None
                run.status = "running"
                run.started_at = utcnow()
                user = session.get(User, run.user_id)
                facility = session.get(Facility, run.facility_id)
                assert user is not None and facility is not None
                people = (
                    {"id": user.id, "name": user.name, "email": user.email},
                    {"id": facility.id, "name": facility.name, "slug": facility.slug},
                )
            self._publish(run, {"type": "run.status", "status": "running"})
            outcome = self._sandbox_run(run, people)
            self._finish(run, outcome)
        except Exception:
            log.exception("run %s failed inside the host", run_id)
            self._finish_internal_error(run_id)
        finally:
            self._grants.forget_run(run_id)
            with self._lock:
                self._cancel.pop(run_id, None)
                done = self._done.pop(run_id, None)
            if done is not None:
                done.set()
        return outcome

    def _sandbox_run(self, run: Run, people: tuple[dict[str, Any], dict[str, Any]]) -> RunResult:
        from app.integrations.broker import RunContext

        context = RunContext(
            facility_id=run.facility_id,
            user_id=run.user_id,
            run_id=run.id,
            script_id=run.script_id,
            interactive=run.interactive,
        )
        with self._lock:
            cancel = self._cancel.get(run.id)
        result: RunResult = extensions.executor(self._app).run(
            run.source,
            input=run.input,
            limits=limits_from_config(self._app.config),
            user=people[0],
            facility=people[1],
            on_call=self._get_broker().handler(context),
            on_output=lambda text: self._publish(run, {"type": "run.output", "data": text}),
            cancel=cancel,
        )
        self._get_broker().flush()  # the run's calls are in the call log before it is reported
        return result

    def _finish(self, run: Run, outcome: RunResult) -> None:
        error = outcome.error
        values = {
            "status": outcome.status,
            "result": outcome.result,
            "output": outcome.output,
            "error_code": error.code if error else None,
            "error_message": error.message if error else None,
            "error_line": error.line if error else None,
            "calls": outcome.calls,
            "duration_ms": round(outcome.duration_ms, 3),
            "finished_at": utcnow(),
        }
        factory = db.session_factory(self._app)
        with factory() as session, session.begin():
            session.execute(update(Run).where(Run.id == run.id).values(**values))
            saved = session.get(Run, run.id)
            assert saved is not None
            payload = saved.to_dict()
        self._publish(run, {"type": "run.finished", "run": payload})
        if outcome.status == CANCELLED:
            log.info("run %s cancelled", run.id)

    def _finish_internal_error(self, run_id: str) -> None:
        factory = db.session_factory(self._app)
        with factory() as session, session.begin():
            run = session.get(Run, run_id)
            if run is None:
                return
            run.status = "failed"
            run.error_code = "internal_error"
            run.error_message = "Scriptbox could not finish this run; the error was logged"
            run.finished_at = utcnow()
            payload = run.to_dict()
        self._hub.publish(
            run.user_id, run.facility_id, {"type": "run.finished", "run_id": run_id, "run": payload}
        )
