"""What a paused run waits for: its open sign-in prompt as data (DESIGN §4).

One shape, `prompt_data`, says which prompt it is, for which integration and account,
until when, and (in words) what a default account's prompt means to someone with labelled
ones: the `grant.required` webhook carries it, and the API's run carries it as its
`prompt` while the run is `waiting_for_grant` or `parked` on it (`waiting_prompts`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.lifecycle import is_paused
from app.models import Grant, Integration, Run
from app.services.grant_messages import default_account_note


def prompt_data(session: Session, grant: Grant, integration: Integration) -> dict[str, Any]:
    """The prompt `grant` as data: its id, the integration (key) and the account it wants
    (the user's own, `owner` "user", with its `label`), why (`reason`: `missing`,
    `needs_reauth`, ...), when it expires unanswered, and the note the page's prompt shows
    when the user has the service only under labels (`account_note`, else None)."""
    return {
        "grant_id": grant.id,
        "integration": integration.key,
        "owner": "user",
        "label": grant.label,
        "reason": grant.reason,
        "expires_at": grant.expires_at.isoformat(),
        "account_note": default_account_note(session, grant, integration.name),
    }


def waiting_prompts(
    session: Session, runs: Iterable[Mapping[str, Any]]
) -> dict[str, tuple[dict[str, Any], str]]:
    """The open prompt each paused run (a `to_dict`) waits for, by run id, with its
    integration's auth mode: one query for them all (and one per prompt of a default
    account, for its note). A run whose prompt was answered meanwhile (it is about to go
    on) has none."""
    waiting = {run["id"] for run in runs if is_paused(run["status"])}
    if not waiting:
        return {}
    rows = session.execute(
        select(Run.id, Grant, Integration)
        .join(Grant, Grant.id == Run.waiting_grant_id)
        .join(Integration, Integration.id == Grant.integration_id)
        .where(Run.id.in_(waiting), Grant.state == "pending")
    ).all()
    return {
        run_id: (prompt_data(session, grant, integration), integration.auth_mode)
        for run_id, grant, integration in rows
    }
