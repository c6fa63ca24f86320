"""The run driver: executes one claimed run in the sandbox and records how it ended.

Whatever queues runs (threads here, Celery later) hands a run id to `RunDriver.drive` in
the thread that should execute it; the driver never decides when or where a run starts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, select
from sqlalchemy.exc import SQLAlchemyError

from app import db
from app.integrations.broker import Broker
from app.integrations.call_context import RunContext
from app.integrations.vault import Vault, VaultError
from app.lifecycle import INTERRUPTED, RUNS, UNREACHABLE_MESSAGE, Lifecycle, RunStatus
from app.models import Facility, User
from app.runner.heartbeat import Heartbeat
from app.runner.output import LiveOutput
from app.runner.store_calls import StoreCalls
from app.services.grants import GrantCoordinator
from sandbox import CANCELLED, PARKED, Executor, Journal, Limits, RunResult

log = logging.getLogger(__name__)
INTERNAL_ERROR_MESSAGE = "Scriptbox could not finish this run; the error was logged"
KEYS_MESSAGE = (
    "a secret this run needs was stored under an encryption key this server does not have:"
    " the operator must put that key back in SCRIPTBOX_SECRET_KEYS (after the newest one)"
)


@dataclass(frozen=True, slots=True)
class DrivenRun:
    """What a driver needs of its run, read once per drive."""

    id: str
    facility_id: int
    user_id: int
    script_id: int | None
    source: str
    input: Any
    interactive: bool
    trigger: str  # what started it (app.models.scripts.RunTrigger); set once, at its start
    output: str | None  # so far: a resumed run's output goes on from there
    journal: bytes | None  # a parked run's (encrypted)
    waiting_grant_id: str | None
    paused_at: datetime | None  # when it began to wait for that prompt


def _of_run(column: Any, key: Any, label: str) -> ColumnElement[Any]:
    return select(column).where(key).scalar_subquery().label(label)


# What a driver needs of its run: the run, who runs it and where. Its claim returns them
# with its UPDATE, so the run is not read again (subqueries: RETURNING names one table).
DRIVEN_COLUMNS: tuple[ColumnElement[Any], ...] = (
    *(RUNS.c[field] for field in DrivenRun.__dataclass_fields__),
    _of_run(User.name, User.id == RUNS.c.user_id, "user_name"),
    _of_run(User.email, User.id == RUNS.c.user_id, "user_email"),
    _of_run(Facility.name, Facility.id == RUNS.c.facility_id, "facility_name"),
    _of_run(Facility.slug, Facility.id == RUNS.c.facility_id, "facility_slug"),
)


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


class RunDriver:
    """Drives runs that were moved to `running` for it (its `driver_id` is on the row)."""

    def __init__(
        self,
        *,
        lifecycle: Lifecycle,
        grants: GrantCoordinator,
        broker: Callable[[], Broker],
        executor: Callable[[], Executor],
        limits: Callable[[], Limits],
        heartbeat: Heartbeat,
        vault: Vault,
        store: StoreCalls,
    ) -> None:
        self._lifecycle = lifecycle
        self._script_store = store
        self._grants = grants
        self._broker = broker
        self._executor = executor
        self._limits = limits
        self._heartbeat = heartbeat
        self._vault = vault
        self.driver_id = heartbeat.driver_id
        self._output = LiveOutput(lifecycle=lifecycle)
        heartbeat.on_beat(self._output.store_pending)
        # Once its final state is stored a run is no longer cancellable here: a cancel
        # that comes after `run.finished` (before this thread let the run go) says so.
        lifecycle.on_end(lambda run_id, _run: heartbeat.release(run_id))

    def claim_and_drive(self, run_id: str) -> RunResult | None:
        """Start a queued run in this thread (the terminal's `scriptbox run --facility`)."""
        # Driven here before the claim: a Ctrl-C just after it cancels the run, where it
        # would otherwise find nothing to cancel and quit, leaving the run `running`.
        self._heartbeat.adopt(run_id)
        claimed = self._lifecycle.start(run_id, driver=self.driver_id, returning=DRIVEN_COLUMNS)
        if claimed is None:
            self._heartbeat.release(run_id)
            return None
        self._heartbeat.start(sweep=False)  # others must see this process is alive
        return self.drive(run_id, claimed)

    def drive(self, run_id: str, claimed: Row[Any]) -> RunResult | None:
        """Execute a run its claim moved to `running` for this driver (`claimed`: the row
        the claim returned, `DRIVEN_COLUMNS`); store its outcome."""
        outcome: RunResult | None = None
        cancel = self._heartbeat.adopt(run_id)
        try:
            fields = claimed._mapping
            run = DrivenRun(**{field: fields[field] for field in DrivenRun.__dataclass_fields__})
            people = (
                {"id": run.user_id, "name": claimed.user_name, "email": claimed.user_email},
                {"id": run.facility_id, "name": claimed.facility_name,
                 "slug": claimed.facility_slug},
            )
            journal = self._open_journal(run)
            try:
                outcome = self._execute(run, people, cancel, journal)
            finally:
                self._output.close(run_id)
            if outcome.status == PARKED:
                self._park(run, outcome)
            else:
                self._finish(run, outcome)
        except Exception as error:
            if db.unreachable(error):
                self._lost_database(run_id, error)
            else:
                self._failed_inside(run_id, error)
        finally:
            self._heartbeat.release(run_id)
            self._grants.forget_run(
                run_id, parked=outcome is not None and outcome.status == PARKED)
            if outcome is None or outcome.status == CANCELLED:
                self._cancel_unwatched()  # its prompt must not outlive it
        return outcome

    def _cancel_unwatched(self) -> None:
        """Cancel the prompts no run waits for; with the database out of reach the sweep
        does it once it answers (an error here would end the run's thread unlogged)."""
        try:
            self._grants.cancel_unwatched()
        except SQLAlchemyError as error:
            if not db.unreachable(error):
                raise

    def _failed_inside(self, run_id: str, error: Exception) -> None:
        """End the run `internal_error` for a fault of the host's own (logged)."""
        log.exception("run %s failed inside the host", run_id)
        # A secret sealed under a key this server lacks: the operator can mend that.
        message = KEYS_MESSAGE if isinstance(error, VaultError) else INTERNAL_ERROR_MESSAGE
        try:
            self._lifecycle.fail(run_id, code="internal_error", message=message)
        except SQLAlchemyError as failed:  # gone for good: the sweep ends it
            log.error("run %s could not be marked failed: %s", run_id, failed)

    def _lost_database(self, run_id: str, error: Exception) -> None:
        """End the run `interrupted`, saying why, when the database went away under it (a
        host call's lookup, a write). Left to the sweep, it would end the same way but
        say the server stopped, which it did not. The ending waits for the database like
        an outcome (`_store`); the run is never carried on, so no call goes out twice."""
        log.warning("run %s lost its database (%s): it ends interrupted", run_id,
                    type(getattr(error, "orig", error)).__name__)
        try:
            self._store(run_id, lambda: self._lifecycle.fail(
                run_id, code=INTERRUPTED, message=UNREACHABLE_MESSAGE),
                what=f"ending run {run_id} interrupted")
        except SQLAlchemyError as failed:  # refused for another reason: the sweep ends it
            log.error("run %s could not be marked interrupted: %s", run_id, failed)

    def _open_journal(self, run: DrivenRun) -> Journal | None:
        """The parked run's journal (decrypted), and its prompt's outcome for the replay."""
        if run.journal is None:
            return None
        if run.waiting_grant_id is not None:
            self._grants.resume_with(run.id, run.waiting_grant_id)
        return Journal.from_bytes(self._vault.decrypt(run.journal.decode()).encode())

    def _park(self, run: DrivenRun, outcome: RunResult) -> None:
        """Store the journal encrypted and let the worker and this thread go."""
        assert outcome.journal is not None
        sealed = self._vault.encrypt(outcome.journal.to_bytes().decode()).encode()
        if not self._store(run.id, lambda: self._lifecycle.park(
                run.id, journal=sealed, output=outcome.output, calls=outcome.requests,
                duration_ms=round(outcome.duration_ms, 3)),
                what=f"parking run {run.id}"):
            log.warning("run %s parked but had already left waiting_for_grant", run.id)

    def _execute(
        self,
        run: DrivenRun,
        people: tuple[dict[str, Any], dict[str, Any]],
        cancel: threading.Event,
        journal: Journal | None,
    ) -> RunResult:
        resumed_on = run.waiting_grant_id if journal is not None else None
        context = RunContext(
            facility_id=run.facility_id,
            user_id=run.user_id,
            run_id=run.id,
            script_id=run.script_id,
            interactive=run.interactive,
            trigger=run.trigger,
            waited_before_s=None if resumed_on is None
            else self._grants.parked_wait_s(resumed_on, run.paused_at),
        )
        result = self._executor().run(
            run.source,
            input=run.input,
            limits=self._limits(),
            user=people[0],
            facility=people[1],
            # The script's store calls are served beside the broker, which takes the rest.
            on_call=self._script_store.handler(context, self._broker().handler(context)),
            on_output=self._output.open(run),
            cancel=cancel,
            journal=journal,
        )
        # The run's calls are in the call log before it is reported, unless the database
        # cannot be reached: then they are written once it answers.
        if not self._broker().flush(timeout=db.UNREACHABLE_RETRY_S):
            log.warning("run %s's call-log rows wait for the database", run.id)
        return result

    def _finish(self, run: DrivenRun, outcome: RunResult) -> None:
        error = outcome.error
        values = {
            "result": outcome.result,
            "output": outcome.output,
            "error_code": error.code if error else None,
            "error_message": error.message if error else None,
            "error_line": error.line if error else None,
            "error_reason": error.reason if error else None,
            "error_trace": [frame.to_dict() for frame in error.trace] if error else None,
            "calls": outcome.requests,
            "duration_ms": round(outcome.duration_ms, 3),
        }
        if not self._store(run.id, lambda: self._lifecycle.finish(
                run.id, target=RunStatus(outcome.status), values=values),
                what=f"storing the outcome of run {run.id}"):
            log.warning("run %s ended as %s but had already left running", run.id, outcome.status)

    def _store(self, run_id: str, store: Callable[[], bool], *, what: str) -> bool:
        """`store()`, the write of a run's outcome; False when the run had already left
        the state it expects.

        A database that cannot be reached now (a restart, a failover) must not cost the
        run its outcome. This thread tries again for a while (`db.until_reachable`); past
        that the heartbeat keeps the run, renewed, and tries on each beat until the
        database answers (True then: the outcome is not lost). Meanwhile the sweep waits
        out the outage before it takes silence for a dead driver (app.runner.heartbeat).
        """
        try:
            return db.until_reachable(store, what=what)
        except SQLAlchemyError as error:
            if not db.unreachable(error):
                raise
        self._heartbeat.keep_unstored(run_id, store, what=what)
        return True
