"""What a grant prompt says: the `grant.required` and `grant.resolved` messages the user's
pages receive, and the NoIntegrationGrant a waiting call raises in the script when nobody
signs in. The prompts themselves (opening, waiting, resolving): services/grants.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Account, Facility, Grant, Integration, Run, Script
from app.services.secret_destinations import where_secrets_go
from sandbox import HostCallError


def refusal(reason: str, service: str) -> HostCallError:
    """The NoIntegrationGrant a waiting call raises in the script, in words."""
    messages = {
        "refused": f"the user declined to connect {service}",
        "expired": f"nobody signed in to {service} before the prompt expired",
        "cancelled": f"the run was cancelled while waiting for {service}",
        "too_many_prompts": f"{service} needs an account, but you already have too many "
        "sign-in prompts open; answer or refuse them, then run the script again",
    }
    return HostCallError(
        "no_integration_grant",
        messages.get(reason, f"no usable {service} account"),
        reason=reason,
        service=service,
    )


def asking_script(script_id: int | None, name: str | None) -> str:
    """How a prompt names the script whose run asks: its name, "Your editor script" for
    source run from the editor, "A script" for one deleted since."""
    if name:
        return name
    return "Your editor script" if script_id is None else "A script"


def default_account_note(session: Session, grant: Grant, service: str) -> str | None:
    """Why a prompt for the default account asks someone who has connected the service
    already: only under labels, which `account="user"` and unnamed calls never take (DESIGN
    §3). None when the prompt names a label or the person has no labelled account of it, or
    has a default one (it needs signing in again: the prompt's reason says so). Only the
    person's own accounts are looked at."""
    if grant.label:
        return None
    labels = session.scalars(
        select(Account.label)
        .where(
            Account.facility_id == grant.facility_id,
            Account.integration_id == grant.integration_id,
            Account.owner_kind == "user",
            Account.user_id == grant.user_id,
        )
        .order_by(Account.label)
    ).all()
    return labelled_only_note(service, labels)


def labelled_only_note(service: str, labels: Sequence[str]) -> str | None:
    """default_account_note's words for a person whose accounts of `service` have these
    `labels` (sorted): None when they have none, or a default one among them."""
    if not labels or "" in labels:
        return None
    named = ", ".join(f"'{label}'" for label in labels)
    accounts, them = ("account is", "it") if len(labels) == 1 else ("accounts are", "them")
    return (
        f"This script asks for your default {service} account (connected without a label); "
        f"your {named} {accounts} used only by scripts that name {them}."
    )


def required_message(session: Session, grant_id: str) -> dict[str, Any]:
    """The `grant.required` message for a grant."""
    grant = session.get(Grant, grant_id)
    assert grant is not None
    integration = session.get(Integration, grant.integration_id)
    facility = session.get(Facility, grant.facility_id)
    script_name = "A script"
    if grant.run_id and (run := session.get(Run, grant.run_id)) is not None:
        script = session.get(Script, run.script_id) if run.script_id else None
        script_name = asking_script(run.script_id, script.name if script else None)
    assert integration is not None and facility is not None
    # Said in the prompt before Sign in: an OAuth sign-in goes straight to this origin.
    where = where_secrets_go(integration)
    return {
        "type": "grant.required",
        "grant_id": grant.id,
        "facility": facility.slug,  # a page of several facilities (Settings) shows them all
        "run_id": grant.run_id,
        "script": script_name,
        "integration": {
            "key": integration.key,
            "name": integration.name,
            "auth_mode": integration.auth_mode,
        },
        "label": grant.label,
        "reason": grant.reason,
        # Said under the prompt when the person has the service only under labels.
        "account_note": default_account_note(session, grant, integration.name),
        "expires_at": grant.expires_at.isoformat(),
        "sign_in_url": f"/f/{facility.slug}/grants/{grant.id}/sign-in",
        # Where the sign-in goes, {"sign_in_at", "used_at"} (base URL parameters as templates).
        "destination": where and {"sign_in_at": where.sign_in_at, "used_at": list(where.used_at)},
    }


def resolved_message(grant_id: str, state: str) -> dict[str, Any]:
    """The `grant.resolved` message: the prompt ended (granted/refused/expired/cancelled)."""
    return {"type": "grant.resolved", "grant_id": grant_id, "state": state}
