"""What a paused run waits for: its open sign-in prompt as data (DESIGN §4).

One shape, `prompt_data`, says which prompt it is, for which integration and account, and
until when: the `grant.required` webhook carries it, and the API's run carries it as its
`prompt` while the run is `waiting_for_grant` or `parked` on it (`waiting_prompts`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.lifecycle import is_paused
from app.models import Grant, Integration, Run


def prompt_data(grant: Grant, integration_key: str) -> dict[str, Any]:
    """The prompt `grant` as data: its id, the integration (key) and the account it wants
    (the user's own, `owner` "user", with its `label`), why (`reason`: `missing`,
    `needs_reauth`, ...) and when it expires unanswered."""
    return {
        "grant_id": grant.id,
        "integration": integration_key,
        "owner": "user",
        "label": grant.label,
        "reason": grant.reason,
        "expires_at": grant.expires_at.isoformat(),
    }


def waiting_prompts(
    session: Session, runs: Iterable[Mapping[str, Any]]
) -> dict[str, tuple[dict[str, Any], str]]:
    """The open prompt each paused run (a `to_dict`) waits for, by run id, with its
    integration's auth mode: one query for them all. A run whose prompt was answered
    meanwhile (it is about to go on) has none."""
    waiting = {run["id"] for run in runs if is_paused(run["status"])}
    if not waiting:
        return {}
    rows = session.execute(
        select(Run.id, Grant, Integration.key, Integration.auth_mode)
        .join(Grant, Grant.id == Run.waiting_grant_id)
        .join(Integration, Integration.id == Grant.integration_id)
        .where(Run.id.in_(waiting), Grant.state == "pending")
    ).all()
    return {row[0]: (prompt_data(row[1], row[2]), row[3]) for row in rows}
