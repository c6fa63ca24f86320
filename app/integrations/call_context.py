"""Who an integration call is made for, and how a missing account is asked for.

The broker's callers build a `RunContext` per run; when a call needs an account nobody
connected, the broker hands a `GrantRequest` to the run's grant hook (`not_interactive`
when no person can be asked: API runs, the terminal)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from app.integrations.resolution import MASTER_NEEDS_REAUTH, NOT_INTERACTIVE, refusal_message
from sandbox import HostCall, HostCallError


@dataclass(frozen=True)
class RunContext:
    """Who runs the script, where, and whether a person can be asked to sign in."""

    facility_id: int
    user_id: int | None
    run_id: str | None = None
    script_id: int | None = None
    interactive: bool = False
    # What started the run ("manual", "schedule"…: app.models.scripts.RunTrigger); None
    # for a call outside a stored run.
    trigger: str | None = None
    # A resumed run's first live call is the one it parked on: how long the person was
    # asked before (seconds), the wait before the park included. None: not resumed.
    waited_before_s: float | None = None


@dataclass(frozen=True)
class GrantRequest:
    """A call needs an account nobody connected: the grant hook asks the user."""

    facility_id: int
    user_id: int | None
    run_id: str | None
    integration_id: int
    integration_key: str
    integration_name: str
    label: str
    reason: str  # a prompt reason of app.integrations.resolution
    # account=None: a master account connected meanwhile would do (DESIGN §3).
    takes_master: bool = False
    # The run's trigger (RunContext.trigger): whether someone outside may answer for it.
    trigger: str | None = None
    # Whether the run was started from a page that may show the prompt
    # (RunContext.interactive, read when the run was claimed).
    interactive: bool = False
    call: HostCall | None = field(default=None, compare=False)


GrantHook = Callable[[GrantRequest], int]


def not_interactive(request: GrantRequest) -> int:
    """The default grant hook: nobody can be asked (and a stale master account says so)."""
    reason = MASTER_NEEDS_REAUTH if request.reason == MASTER_NEEDS_REAUTH else NOT_INTERACTIVE
    raise HostCallError(
        "no_integration_grant",
        refusal_message(reason, request.integration_name),
        reason=reason,
        service=request.integration_key,
    )
