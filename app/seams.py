"""The run engine's seams (DESIGN §7): RunQueue, EventBus and GrantSignals as Protocols.

Each has an embedded implementation (threads and memory in this process) and may get a
distributed one (Celery, Redis) chosen by `SCRIPTBOX_EXECUTOR`; the app factory builds
one of each and injects it, so nothing below the factory knows which it got.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

Message = dict[str, Any]


class Subscription(Protocol):
    """One open page's stream of messages."""

    closed: threading.Event  # set when the page must reconnect (the server goes away)

    @property
    def close_reason(self) -> tuple[int, str]:
        """The websocket close code and text the page gets once `closed` is set."""

    def get(self, timeout: float | None = None) -> Message | None:
        """The next message, or None after `timeout` seconds."""

    def close(self) -> None:
        """Stop receiving."""


class EventBus(Protocol):
    """Publishes JSON messages to every open page of a user in a facility.

    A page may also *watch* its facility (admins see everyone's runs): it then hears the
    messages published with `watchers=True` for any user of that facility as well.
    """

    def publish(
        self, user_id: int, facility_id: int, message: Message, *, watchers: bool = False
    ) -> int:
        """Send to every open page of (user, facility), and with `watchers` also to the
        facility's watching pages of other users; how many of the user's pages (here)."""

    def subscribe(self, user_id: int, facility_id: int, *, watch: bool = False) -> Subscription:
        """Register an open page; `watch`: it hears the facility's watched messages too."""

    def has_listeners(self, user_id: int, facility_id: int) -> bool:
        """True when the user has at least one open page in the facility."""

    def close_all(self) -> None:
        """Tell every open page served here that the server is going away (a shutdown hook)."""


@dataclass(frozen=True)
class GrantOutcome:
    """How a grant prompt ended: its final state and, when granted, the account."""

    state: str
    account_id: int | None = None


class GrantSignals(Protocol):
    """Tells a run waiting for a grant how the grant ended (or that the run was cancelled)."""

    def notify(self, grant_id: str, outcome: GrantOutcome) -> None:
        """The grant ended: wake everyone waiting for it."""

    def wait(self, grant_id: str, run_id: str | None, timeout: float) -> GrantOutcome | None:
        """Block up to `timeout` for the grant's outcome; None when time ran out first.

        A cancelled run gets `GrantOutcome("cancelled")` at once.
        """

    def cancel_run(self, run_id: str) -> None:
        """Wake the run (if it waits) with `cancelled`."""

    def forget_run(self, run_id: str, *, parked: bool = False) -> None:
        """Drop what is kept about a run that ended (or `parked`: it will wait again)."""


class RunQueue(Protocol):
    """Starts, resumes and cancels runs by id; where they execute is the queue's business."""

    def submit(self, run_id: str) -> None:
        """Start the queued run when the caps allow (it stays `queued` until then)."""

    def resume(self, run_id: str) -> None:
        """Continue a parked run whose grant ended, by replaying its journal."""

    def cancel(self, run_id: str) -> bool:
        """Cancel a run in any non-final state; False when it had already ended."""

    def wait(self, run_id: str, timeout: float) -> dict[str, Any] | None:
        """Block until the run ends, or pauses for a sign-in (it cannot go on without a
        person), or `timeout` passes: the run as it ended or as it is once paused
        (`to_dict`), or None while it goes on."""

    def deliver(self, delivery_id: str) -> None:
        """Send a webhook delivery where the queue runs its tasks; a failed attempt is sent
        again when its backoff is due (the heartbeat's tick finds it)."""

    def shutdown(self, timeout: float) -> None:
        """Stop taking runs; let running runs finish or park within `timeout`, then stop."""
