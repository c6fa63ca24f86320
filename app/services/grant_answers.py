"""Settling grant prompts: an answer, a connected account, an expiry or a cancel (DESIGN §4)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from app.lifecycle import FINAL, RunStatus
from app.models import Account, Grant, Run
from app.models._types import utcnow
from app.seams import EventBus, GrantOutcome, GrantSignals
from app.services.grant_messages import resolved_message

SessionFactory = Callable[[], Session]
# A run that waits for a grant is one of these; a pending grant without one is stale.
WAITING = (str(RunStatus.WAITING), str(RunStatus.PARKED))
_FINAL = [str(status) for status in FINAL]


class GrantAnswers:
    """Settles pending prompts and wakes the runs that wait for them; the grant hook that
    opens prompts (services/grants.GrantCoordinator) is one of these."""

    def __init__(
        self, *, session_factory: SessionFactory, bus: EventBus, signals: GrantSignals
    ) -> None:
        self._session_factory = session_factory
        self._bus = bus
        self._signals = signals
        self._on_resolved: list[Callable[[str], None]] = []

    def on_resolved(self, listener: Callable[[str], None]) -> None:
        """Call `listener(grant_id)` after every grant that ends (the queue resumes runs)."""
        self._on_resolved.append(listener)

    def resolve(
        self,
        grant_id: str,
        state: str,
        account_id: int | None = None,
        *,
        takes_master: bool = False,
    ) -> bool:
        """Settle a pending grant (granted/refused/expired/cancelled) and wake its runs;
        `takes_master`: only if the master account answers it (checked in the same write).

        Returns False when the grant was no longer pending (nothing changes then).
        """
        pending = [Grant.id == grant_id, Grant.state == "pending"]
        if takes_master:
            pending.append(Grant.takes_master.is_(True))
        with self._session_factory() as session, session.begin():
            changed = session.execute(  # type: ignore[attr-defined]
                update(Grant)
                .where(*pending)
                .values(state=state, account_id=account_id, resolved_at=utcnow())
            ).rowcount
            grant = session.get(Grant, grant_id)
        if not changed or grant is None:
            return False
        self._signals.notify(grant_id, GrantOutcome(state, account_id))
        self._bus.publish(grant.user_id, grant.facility_id, resolved_message(grant_id, state))
        for listener in self._on_resolved:
            listener(grant_id)
        return True

    def answer_matching(
        self,
        *,
        facility_id: int,
        user_id: int,
        integration_id: int,
        label: str,
        state: str,
        account_id: int | None = None,
    ) -> int:
        """Settle the user's pending prompts for this integration and label (a connect link
        for that account was completed or refused); how many were settled."""
        with self._session_factory() as session:
            pending = session.scalars(
                select(Grant.id).where(
                    Grant.facility_id == facility_id,
                    Grant.user_id == user_id,
                    Grant.integration_id == integration_id,
                    Grant.label == label,
                    Grant.state == "pending",
                )
            ).all()
        return sum(self.resolve(grant_id, state, account_id) for grant_id in pending)

    def answer_connected(self, account: Account) -> int:
        """Grant the pending prompts `account`, just connected or signed in again, answers
        (wherever it was connected: a prompt's own sign-in resolves only its prompt): its
        owner's for that integration and label, or for a master account every member's
        whose calls take the master (account=None, DESIGN §3); how many were granted."""
        if account.owner_kind == "user" and account.user_id is not None:
            return self.answer_matching(
                facility_id=account.facility_id,
                user_id=account.user_id,
                integration_id=account.integration_id,
                label=account.label,
                state="granted",
                account_id=account.id,
            )
        if account.owner_kind != "master" or account.status != "active":
            return 0
        with self._session_factory() as session:
            pending = session.scalars(
                select(Grant.id).where(
                    Grant.facility_id == account.facility_id,
                    Grant.integration_id == account.integration_id,
                    Grant.takes_master.is_(True),
                    Grant.state == "pending",
                )
            ).all()
        return sum(
            self.resolve(grant_id, "granted", account.id, takes_master=True) for grant_id in pending
        )

    def cancel_for_integration(self, integration_id: int) -> int:
        """Cancel every pending prompt for the integration (an admin switched it off): the
        runs waiting for them go on, their calls refused; how many were cancelled."""
        with self._session_factory() as session:
            pending = session.scalars(
                select(Grant.id).where(
                    Grant.integration_id == integration_id, Grant.state == "pending"
                )
            ).all()
        return sum(self.resolve(grant_id, "cancelled") for grant_id in pending)

    def expire_due(self) -> int:
        """Expire every pending prompt past its time (parked runs hold no thread to do it)."""
        with self._session_factory() as session:
            due = session.scalars(
                select(Grant.id).where(Grant.state == "pending", Grant.expires_at <= utcnow())
            ).all()
        return sum(self.resolve(grant_id, "expired") for grant_id in due)

    def cancel_unwatched(self) -> int:
        """Cancel pending prompts no run waits for any more (they must never be shown again)."""
        waiting = exists().where(Run.waiting_grant_id == Grant.id, Run.status.in_(WAITING))
        # The run that opened the prompt is not paused on it yet for a moment: spare it.
        opener_live = exists().where(Run.id == Grant.run_id, Run.status.not_in(_FINAL))
        with self._session_factory() as session:
            stale = session.scalars(
                select(Grant.id).where(
                    Grant.state == "pending", Grant.run_id.is_not(None), ~waiting, ~opener_live
                )
            ).all()
        return sum(self.resolve(grant_id, "cancelled") for grant_id in stale)
