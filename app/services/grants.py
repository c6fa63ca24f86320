"""Grant prompts: pause a run, ask the user's open pages, resume on sign-in (DESIGN §4).

The broker calls `GrantCoordinator.request` (its grant hook) inside the run's paused
clock. A pending Grant row is shared by every run of the same user waiting for the same
integration and label; the sign-in callback, a refusal, the expiry or the end of every
run waiting for it resolves it. Waiting runs learn the outcome through `GrantSignals`;
parked runs are resumed by whoever listens to `on_resolved` (the run queue). A call no
page can answer (an API run) waits the same way when a `RemotePrompt` (the webhooks) can
ask the embedding app; a connect link for that account answers it (`answer_matching`), as
does connecting the account anywhere else, or the master account for a call that takes it
(`answer_connected`).
Settling prompts (answers, connected accounts, expiry, cancels): services/grant_answers.py.
What the prompts say (the pages' messages, the script's error): services/grant_messages.py.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import exists, func, select, update

from app.integrations.call_context import not_interactive
from app.lifecycle import Lifecycle
from app.models import Grant, Run, User
from app.models._types import utcnow
from app.seams import EventBus, GrantOutcome, GrantSignals
from app.services.grant_answers import WAITING, GrantAnswers, SessionFactory
from app.services.grant_messages import refusal, required_message
from sandbox import ParkRun

log = logging.getLogger(__name__)

# A live pause looks up now and then whether its process wants it parked (shutdown).
_SLICE_S = 1.0


class RemotePrompt(Protocol):
    """Who asks the user when no page can (the embedding app, through its webhook)."""

    def can_prompt(self, req: Any) -> bool:
        """True when this call may wait for an answer from outside (a run, a listener)."""

    def prompt(self, req: Any, grant: Grant) -> None:
        """Announce the new pending `grant` (with a link that answers it)."""


class GrantCoordinator(GrantAnswers):
    """Creates and shares grant prompts and waits for them (settling them: GrantAnswers)."""

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        bus: EventBus,
        signals: GrantSignals,
        lifecycle: Lifecycle,
        timeout_s: float,
        max_pending_per_user: int,
        park_after_s: float,
        max_live_paused: int,
    ) -> None:
        super().__init__(session_factory=session_factory, bus=bus, signals=signals)
        self._lifecycle = lifecycle
        self.timeout_s = timeout_s
        self._max_pending = max_pending_per_user
        self.park_after_s = park_after_s
        self._max_live_paused = max_live_paused
        self._open_lock = threading.Lock()
        self._paused_lock = threading.Lock()
        self._live_paused = 0
        self._parking_all = False
        self._resumed: dict[str, str] = {}  # run id -> the prompt it was parked on
        self._remote: RemotePrompt | None = None

    def ask_remotely(self, remote: RemotePrompt) -> None:
        """Calls no page can answer (an API run) wait for `remote` when it can ask."""
        self._remote = remote

    # -- the broker's grant hook ------------------------------------------------------

    def request(self, req: Any) -> int:
        """Ask the user to connect `req.integration_key`; block until resolved (GrantHook).

        A pause longer than `park_after_s` (or past `max_live_paused` pauses in this
        process) raises ParkRun: the run is stored and resumed by replay when the prompt
        ends, and then this same call gets the prompt's outcome.
        """
        parked_on = self._resumed.pop(req.run_id, None) if req.run_id else None
        if parked_on is not None and self._asks_for(parked_on, req):
            ended = self.outcome(parked_on)
            if ended is not None:
                return self._answer(ended, req)
        on_page = (
            req.user_id is not None
            and req.run_id is not None
            and req.interactive  # read with the run's claim: no query of its own
            and self._bus.has_listeners(req.user_id, req.facility_id)
        )
        remote = None if on_page else self._remote
        if not on_page and (remote is None or not remote.can_prompt(req)):
            return not_interactive(req)
        grant_id, created = self._open_grant(req)
        if req.run_id is not None:
            self._lifecycle.pause(req.run_id, grant_id=grant_id)
        if created and remote is not None:
            self._announce(remote, req, grant_id)
        elif created:
            with self._session_factory() as session:
                message = required_message(session, grant_id)
            self._bus.publish(req.user_id, req.facility_id, message)
        outcome = self._await_live(grant_id, req.run_id)
        if outcome is None:
            raise ParkRun(f"waiting for a person to answer prompt {grant_id}")
        if req.run_id is not None:
            self._lifecycle.unpause(req.run_id)
        return self._answer(outcome, req)

    def _announce(self, remote: RemotePrompt, req: Any, grant_id: str) -> None:
        """Tell the embedding app; if that fails nobody can answer: the prompt is cancelled
        (the call then raises NoIntegrationGrant instead of waiting for nothing)."""
        with self._session_factory() as session:
            grant = session.get(Grant, grant_id)
            session.expunge_all()
        try:
            assert grant is not None
            remote.prompt(req, grant)
        except Exception:
            log.exception("could not announce prompt %s to the embedding app", grant_id)
            self.resolve(grant_id, "cancelled")

    @staticmethod
    def _answer(outcome: GrantOutcome, req: Any) -> int:
        if outcome.state == "granted" and outcome.account_id is not None:
            return outcome.account_id
        raise refusal(outcome.state, req.integration_name)

    def _await_live(self, grant_id: str, run_id: str | None) -> GrantOutcome | None:
        """Wait with the worker alive for up to `park_after_s`; None: park the run."""
        if run_id is None:
            return self.await_outcome(grant_id, run_id, limit_s=None)
        with self._paused_lock:
            crowded = self._parking_all or self._live_paused >= self._max_live_paused
            self._live_paused += 1
        try:
            limit = 0.0 if crowded else self.park_after_s
            return self.await_outcome(grant_id, run_id, limit_s=limit)
        finally:
            with self._paused_lock:
                self._live_paused -= 1

    def resume_with(self, run_id: str, grant_id: str) -> None:
        """The run resumes after prompt `grant_id`: its next prompt gets that outcome."""
        self._resumed[run_id] = grant_id

    def await_outcome(
        self, grant_id: str, run_id: str | None, *, limit_s: float | None
    ) -> GrantOutcome | None:
        """The grant's outcome, waiting until it ends or expires (or `limit_s` passes: None)."""
        outcome = self.outcome(grant_id)
        while outcome is None:
            if limit_s is not None and limit_s <= 0:
                return None
            remaining = self._remaining_s(grant_id)
            if remaining <= 0:
                self.resolve(grant_id, "expired")
                return self.outcome(grant_id)
            wait_s = remaining if limit_s is None else min(remaining, limit_s, _SLICE_S)
            started = time.monotonic()
            outcome = self._signals.wait(grant_id, run_id, wait_s)
            if outcome is None:
                # Resolved before we listened, or by a process that could not signal us.
                outcome = self.outcome(grant_id)
            if outcome is None and limit_s is not None:
                limit_s = 0.0 if self._parking_all else limit_s - (time.monotonic() - started)
        return outcome

    def park_all(self) -> None:
        """Park every live pause now and every later one at once (the process is stopping)."""
        self._parking_all = True

    def outcome(self, grant_id: str) -> GrantOutcome | None:
        """How the grant ended, or None while it is pending."""
        with self._session_factory() as session:
            grant = session.get(Grant, grant_id)
        if grant is None:
            return GrantOutcome("cancelled")
        if grant.state == "pending":
            return None
        return GrantOutcome(grant.state, grant.account_id)

    def _asks_for(self, grant_id: str, req: Any) -> bool:
        """True when `req` is the call the run parked on (same integration and label)."""
        with self._session_factory() as session:
            grant = session.get(Grant, grant_id)
        return (
            grant is not None
            and grant.integration_id == req.integration_id
            and grant.label == req.label
        )

    def parked_wait_s(self, grant_id: str, paused_at: datetime | None) -> float | None:
        """How long a run paused at `paused_at` waited for prompt `grant_id`, the live part
        before it parked included: until the prompt's answer (None: not answered)."""
        with self._session_factory() as session:
            answered_at = session.scalar(select(Grant.resolved_at).where(Grant.id == grant_id))
        if paused_at is None or answered_at is None:
            return None
        return max((answered_at - paused_at).total_seconds(), 0.0)

    def _remaining_s(self, grant_id: str) -> float:
        with self._session_factory() as session:
            expires_at = session.scalar(select(Grant.expires_at).where(Grant.id == grant_id))
        return 0.0 if expires_at is None else (expires_at - utcnow()).total_seconds()

    def _open_grant(self, req: Any) -> tuple[str, bool]:
        """The pending grant to share, or a new one (refused past the user's prompt cap)."""
        now = utcnow()
        # One lock per process, and the user's row locked (PostgreSQL; SQLite serialises
        # writers) for calls in other processes, keep two calls from opening twin
        # prompts or both slipping under the cap at once.
        with self._open_lock, self._session_factory() as session, session.begin():
            # NO KEY UPDATE: excludes other openers, not inserts that reference the user.
            session.execute(
                select(User.id).where(User.id == req.user_id).with_for_update(key_share=True)
            )
            existing = session.execute(
                select(Grant.id, Grant.takes_master).where(
                    Grant.user_id == req.user_id,
                    Grant.facility_id == req.facility_id,
                    Grant.integration_id == req.integration_id,
                    Grant.label == req.label,
                    Grant.state == "pending",
                    Grant.expires_at > now,
                )
            ).first()
            if existing is not None and (req.takes_master or not existing.takes_master):
                return existing.id, False
            # A call for the user's own account shares the prompt: the master no longer
            # answers it. Unless the master answered it meanwhile (then open a new one).
            if (
                existing is not None
                and session.execute(  # type: ignore[attr-defined]
                    update(Grant)
                    .where(Grant.id == existing.id, Grant.state == "pending")
                    .values(takes_master=False)
                ).rowcount
            ):
                return existing.id, False
            open_prompts = session.scalar(
                select(func.count(Grant.id)).where(
                    Grant.user_id == req.user_id,
                    Grant.state == "pending",
                    Grant.expires_at > now,
                )
            )
            if (open_prompts or 0) >= self._max_pending:
                raise refusal("too_many_prompts", req.integration_name)
            grant = Grant(
                run_id=req.run_id,
                user_id=req.user_id,
                facility_id=req.facility_id,
                integration_id=req.integration_id,
                label=req.label,
                reason=req.reason,
                takes_master=req.takes_master,
                expires_at=now + timedelta(seconds=self.timeout_s),
            )
            session.add(grant)
            session.flush()
            return grant.id, True

    # -- the run engine's bookkeeping -------------------------------------------------

    def cancel_run(self, run_id: str) -> None:
        """Wake a run that waits for a grant because it was cancelled."""
        self._signals.cancel_run(run_id)

    def forget_run(self, run_id: str, *, parked: bool = False) -> None:
        """Drop bookkeeping for a run that ended or `parked`."""
        self._signals.forget_run(run_id, parked=parked)
        self._resumed.pop(run_id, None)

    # -- messages ---------------------------------------------------------------------

    def pending_messages(self, user_id: int, facility_id: int) -> list[dict[str, Any]]:
        """`grant.required` for every prompt a run still waits for (for a page that connects)."""
        waiting = exists().where(Run.waiting_grant_id == Grant.id, Run.status.in_(WAITING))
        with self._session_factory() as session:
            ids = session.scalars(
                select(Grant.id)
                .where(
                    Grant.user_id == user_id,
                    Grant.facility_id == facility_id,
                    Grant.state == "pending",
                    Grant.expires_at > utcnow(),
                    waiting,
                )
                .order_by(Grant.created_at)
            ).all()
            return [required_message(session, grant_id) for grant_id in ids]
