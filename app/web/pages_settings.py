"""The signed-in user's own pages: Settings (their accounts, API tokens) and invitations.

Their views sit on the pages blueprint (pages.py), so their endpoints stay `pages.*`.
"""

from __future__ import annotations

from typing import Any

from flask.typing import ResponseReturnValue
from sqlalchemy import select

from app import db
from app.integrations import catalog_entry as catalog_rules
from app.models import Account, ApiToken, Integration
from app.services import grant_messages, invitations, run_history
from app.web.pages import bp, render_page
from app.web.security import login_required, memberships_of, require_user


@bp.get("/settings/integrations")
@login_required
def settings_integrations() -> ResponseReturnValue:
    """The user's own accounts, per facility they belong to."""
    user = require_user()
    sections = []
    # The page's sign-in prompts (base.html) come for every one of these facilities.
    for facility, _role in memberships_of(user):
        integrations = db.session.scalars(
            select(Integration)
            .where(Integration.facility_id == facility.id)
            .order_by(Integration.name)
        ).all()
        accounts = db.session.scalars(
            select(Account).where(Account.facility_id == facility.id, Account.user_id == user.id)
        ).all()
        waiting = run_history.waiting_for_sign_in(
            db.session(), user_id=user.id, facility_id=facility.id
        )
        sections.append(
            {
                "facility": facility,
                "integrations": [
                    _row(i, [a for a in accounts if a.integration_id == i.id],
                         waiting.get(i.id, []))
                    for i in integrations
                    if i.auth_mode in catalog_rules.PERSONAL_ACCOUNT_MODES
                ],
            }
        )
    return render_page("settings_integrations.html", None, sections=sections)


def _row(
    integration: Integration, accounts: list[Account], waiting: list[run_history.WaitingRun]
) -> dict[str, Any]:
    """An integration's row: the person's accounts of it, the runs waiting for a sign-in
    and, when one waits for their default account while they have the service only under
    labels, what the prompt says of it (grant_messages.labelled_only_note)."""
    asks_default = any(not run.label for run in waiting)
    labels = sorted(account.label for account in accounts)
    return {
        "integration": integration,
        "accounts": accounts,
        "waiting": waiting,
        "account_note": (
            grant_messages.labelled_only_note(integration.name, labels) if asks_default else None
        ),
    }


@bp.get("/invitations")
@login_required
def my_invitations() -> ResponseReturnValue:
    """Facilities that invited the user: accept or decline."""
    user = require_user()
    return render_page(
        "invitations.html", None, invited=invitations.pending_for(db.session(), user=user)
    )


@bp.get("/settings/tokens")
@login_required
def settings_tokens() -> ResponseReturnValue:
    """API tokens: create (shown once), list, revoke."""
    user = require_user()
    tokens = db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at.desc())
    ).all()
    return render_page("settings_tokens.html", None, tokens=tokens)
