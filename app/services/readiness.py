"""The editor's readiness panel: which account each literal integration call would use now.

The answer comes from the broker's own rule (app.integrations.resolution, DESIGN §3), so
the panel cannot disagree with what a run does.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.integrations.resolution import (
    MASTER_NEEDS_REAUTH,
    NEEDS_REAUTH,
    NO_MASTER_ACCOUNT,
    resolve,
)
from app.models import Integration
from app.services import source_checks
from app.services.context import MemberContext
from sandbox import Call, SourceCheck


def referenced_calls(source: str) -> list[Call]:
    """The distinct literal integration calls of a script, in order of appearance (read in
    a sandbox worker; none when it does not parse). A ValidationError in words when the
    source took too long to read."""
    return list(_checked(source).calls)


def _checked(source: str) -> SourceCheck:
    if not source_checks.may_call_integrations(source):
        return SourceCheck()
    found = source_checks.check_source(source)
    source_checks.refuse_if_too_slow(found)
    return found


def _refuse_unread_calls(found: SourceCheck) -> None:
    """A ValidationError (field `source`, its line) when the source does not compile and
    no call of it could be read: the panel would otherwise say "This script calls no
    integration" of a half-typed script whose calls are unknown."""
    problem = found.error
    if problem is None or found.calls:
        return
    source_checks.refuse_as_not_compiling(
        problem, what="This script", then="the integrations it calls are listed once it does"
    )


def integration_readiness(
    session: Session, member: MemberContext, source: str
) -> list[dict[str, Any]]:
    """For each call a script names: the account it would use, or what will happen instead."""
    found = _checked(source)
    _refuse_unread_calls(found)
    result = []
    for call in found.calls:
        integration = session.scalar(
            select(Integration).where(
                Integration.facility_id == member.facility.id, Integration.key == call.key
            )
        )
        item: dict[str, Any] = {"key": call.key, "account": call.account, "exists": False}
        if integration is None:
            item.update(
                state="unknown_integration",
                ready=False,
                message="no such integration in this facility",
            )
        else:
            item.update(
                exists=True, name=integration.name, **_state(session, integration, member, call)
            )
        result.append(item)
    return result


def _state(
    session: Session, integration: Integration, member: MemberContext, call: Call
) -> dict[str, Any]:
    if not integration.enabled:
        return {
            "state": "switched_off",
            "ready": False,
            "message": "switched off by an admin: the call will fail until it is switched on",
        }
    if integration.auth_mode == "none":
        return {"state": "no_account_needed", "ready": True, "message": "needs no account"}
    if call.dynamic:
        return {
            "state": "dynamic",
            "ready": True,
            "message": "the account is chosen when the script runs",
        }
    label = call.account if call.account not in (None, "user", "master") else ""
    named = f' "{label}"' if label else ""
    outcome = resolve(session, integration, member.user.id, call.account)
    if outcome.account is not None:
        if outcome.account.owner_kind == "master":
            return {"state": "master", "ready": True, "message": "facility master account"}
        return {"state": "own", "ready": True, "message": f"your account{named}"}
    if outcome.refuse_reason == MASTER_NEEDS_REAUTH:
        return {
            "state": MASTER_NEEDS_REAUTH,
            "ready": False,
            "message": "the facility's master account must be signed in again by an admin:"
            " the call will fail until then",
        }
    if outcome.reason == MASTER_NEEDS_REAUTH:
        return {
            "state": MASTER_NEEDS_REAUTH,
            "ready": False,
            "message": "the facility's master account must be signed in again by an admin:"
            " until then you will be asked for your own account",
        }
    if outcome.refuse_reason == NO_MASTER_ACCOUNT:
        return {
            "state": "no_master_account",
            "ready": False,
            "message": 'no master account is connected, and account="master" never asks'
            " anyone: the call will fail until an admin connects one",
        }
    if outcome.reason == NEEDS_REAUTH:
        return {
            "state": "needs_reauth",
            "ready": False,
            "message": f"your account{named} must sign in again: you will be asked",
        }
    return {
        "state": "prompt",
        "ready": False,
        "message": f"no account{' labelled' + named if label else ''} yet:"
        " you will be asked to sign in",
    }
