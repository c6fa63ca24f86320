"""Grant prompts: pause a run, ask the user's open pages, resume on sign-in (DESIGN §4).

The broker calls `GrantCoordinator.request` (its grant hook) inside the run's paused
clock. A pending Grant row is shared by every run of the same user waiting for the same
integration and label; the sign-in callback, a refusal or the expiry resolves it and
wakes every waiting run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.events import EventHub
from app.integrations.broker import not_interactive
from app.models import Facility, Grant, Integration, Run, Script
from app.models._types import utcnow
from sandbox import HostCallError

SessionFactory = Callable[[], Session]


def _refusal(reason: str, service: str) -> HostCallError:
    messages = {
        "refused": f"the user declined to connect {service}",
        "expired": f"nobody signed in to {service} before the prompt expired",
        "cancelled": f"the run was cancelled while waiting for {service}",
    }
    return HostCallError(
        "no_integration_grant",
        messages.get(reason, f"no usable {service} account"),
        reason=reason,
        service=service,
    )


class GrantCoordinator:
    """Creates, shares, resolves and expires grant prompts; wakes the runs that wait."""

    def __init__(self, *, session_factory: SessionFactory, hub: EventHub, timeout_s: float) -> None:
        self._session_factory = session_factory
        self._hub = hub
        self._timeout_s = timeout_s
        self._cond = threading.Condition()
        self._outcomes: dict[str, tuple[str, int | None]] = {}
        self._waiters: dict[str, int] = {}
        self._cancelled_runs: set[str] = set()

    # -- the broker's grant hook ------------------------------------------------------

    def request(self, req: Any) -> int:
        """Ask the user to connect `req.integration_key`; block until resolved (GrantHook)."""
        if (
            req.user_id is None
            or not self._interactive(req.run_id)
            or not self._hub.has_listeners(req.user_id, req.facility_id)
        ):
            return not_interactive(req)
        grant, created = self._open_grant(req)
        self._set_run_status(req, "waiting_for_grant")
        if created:
            self._hub.publish(req.user_id, req.facility_id, self.required_message(grant.id))
        state, account_id = self._wait(grant.id, grant.expires_at, req.run_id)
        if state == "granted" and account_id is not None:
            self._set_run_status(req, "running")
            return account_id
        self._set_run_status(req, "running")
        raise _refusal(state, req.integration_name)

    def _interactive(self, run_id: str | None) -> bool:
        if run_id is None:
            return False
        with self._session_factory() as session:
            return bool(session.scalar(select(Run.interactive).where(Run.id == run_id)))

    def _open_grant(self, req: Any) -> tuple[Grant, bool]:
        now = utcnow()
        with self._session_factory() as session, session.begin():
            existing = session.scalar(
                select(Grant).where(
                    Grant.user_id == req.user_id,
                    Grant.facility_id == req.facility_id,
                    Grant.integration_id == req.integration_id,
                    Grant.label == req.label,
                    Grant.state == "pending",
                    Grant.expires_at > now,
                )
            )
            if existing is not None:
                return existing, False
            grant = Grant(
                run_id=req.run_id,
                user_id=req.user_id,
                facility_id=req.facility_id,
                integration_id=req.integration_id,
                label=req.label,
                reason=req.reason,
                expires_at=now + timedelta(seconds=self._timeout_s),
            )
            session.add(grant)
            session.flush()
            return grant, True

    def _wait(
        self, grant_id: str, expires_at: datetime, run_id: str | None
    ) -> tuple[str, int | None]:
        with self._cond:
            self._waiters[grant_id] = self._waiters.get(grant_id, 0) + 1
            try:
                while grant_id not in self._outcomes:
                    if run_id in self._cancelled_runs:
                        return "cancelled", None
                    remaining = (expires_at - utcnow()).total_seconds()
                    if remaining <= 0:
                        break
                    self._cond.wait(timeout=remaining)
                outcome = self._outcomes.get(grant_id)
            finally:
                self._waiters[grant_id] -= 1
                if not self._waiters[grant_id]:
                    del self._waiters[grant_id]
                    self._outcomes.pop(grant_id, None)
        if outcome is None:
            self.resolve(grant_id, "expired")
            return "expired", None
        return outcome

    def _set_run_status(self, req: Any, status: str) -> None:
        if req.run_id is None:
            return
        with self._session_factory() as session, session.begin():
            session.execute(
                update(Run)
                .where(Run.id == req.run_id, Run.status.in_(("running", "waiting_for_grant")))
                .values(status=status)
            )
        self._hub.publish(
            req.user_id,
            req.facility_id,
            {"type": "run.status", "run_id": req.run_id, "status": status},
        )

    # -- resolution -------------------------------------------------------------------

    def resolve(self, grant_id: str, state: str, account_id: int | None = None) -> bool:
        """Settle a pending grant (granted/refused/expired/cancelled) and wake its runs.

        Returns False when the grant was no longer pending (nothing changes then).
        """
        with self._session_factory() as session, session.begin():
            changed = session.execute(  # type: ignore[attr-defined]
                update(Grant)
                .where(Grant.id == grant_id, Grant.state == "pending")
                .values(state=state, account_id=account_id, resolved_at=utcnow())
            ).rowcount
            grant = session.get(Grant, grant_id)
        if not changed or grant is None:
            return False
        with self._cond:
            self._outcomes[grant_id] = (state, account_id)
            self._cond.notify_all()
        self._hub.publish(
            grant.user_id,
            grant.facility_id,
            {"type": "grant.resolved", "grant_id": grant_id, "state": state},
        )
        return True

    def cancel_run(self, run_id: str) -> None:
        """Wake a run that waits for a grant because it was cancelled."""
        with self._cond:
            self._cancelled_runs.add(run_id)
            self._cond.notify_all()

    def forget_run(self, run_id: str) -> None:
        """Drop bookkeeping for a finished run."""
        with self._cond:
            self._cancelled_runs.discard(run_id)

    # -- messages ---------------------------------------------------------------------

    def required_message(self, grant_id: str) -> dict[str, Any]:
        """The `grant.required` message for a grant."""
        with self._session_factory() as session:
            grant = session.get(Grant, grant_id)
            assert grant is not None
            integration = session.get(Integration, grant.integration_id)
            facility = session.get(Facility, grant.facility_id)
            script_name = "A script"
            if grant.run_id:
                run = session.get(Run, grant.run_id)
                if run is not None and run.script_id:
                    script = session.get(Script, run.script_id)
                    script_name = script.name if script else script_name
                elif run is not None:
                    script_name = "Your editor script"
            assert integration is not None and facility is not None
            return {
                "type": "grant.required",
                "grant_id": grant.id,
                "run_id": grant.run_id,
                "script": script_name,
                "integration": {
                    "key": integration.key,
                    "name": integration.name,
                    "auth_mode": integration.auth_mode,
                },
                "label": grant.label,
                "reason": grant.reason,
                "expires_at": grant.expires_at.isoformat(),
                "sign_in_url": f"/f/{facility.slug}/grants/{grant.id}/sign-in",
            }

    def pending_messages(self, user_id: int, facility_id: int) -> list[dict[str, Any]]:
        """`grant.required` for every prompt still pending (sent to a page that connects)."""
        with self._session_factory() as session:
            ids = session.scalars(
                select(Grant.id)
                .where(
                    Grant.user_id == user_id,
                    Grant.facility_id == facility_id,
                    Grant.state == "pending",
                    Grant.expires_at > utcnow(),
                )
                .order_by(Grant.created_at)
            ).all()
        return [self.required_message(grant_id) for grant_id in ids]
