"""The signed-in user's own pages: Settings (their accounts, API tokens) and invitations.

Their views sit on the pages blueprint (pages.py), so their endpoints stay `pages.*`.
"""

from __future__ import annotations

from flask.typing import ResponseReturnValue
from sqlalchemy import select

from app import db
from app.integrations import catalog_entry as catalog_rules
from app.models import Account, ApiToken, Grant, Integration
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
                    {
                        "integration": i,
                        "accounts": [a for a in accounts if a.integration_id == i.id],
                        "waiting": waiting.get(i.id, []),
                        "account_note": _account_note(i, waiting.get(i.id, [])),
                    }
                    for i in integrations
                    if i.auth_mode in catalog_rules.PERSONAL_ACCOUNT_MODES
                ],
            }
        )
    return render_page("settings_integrations.html", None, sections=sections)


def _account_note(integration: Integration, waiting: list[run_history.WaitingRun]) -> str | None:
    """What the prompt says (grant_messages.default_account_note) when a run waits for the
    user's default account and they have the service only under labels: the row lists
    those as connected, beside a note that runs wait for a sign-in."""
    for run in waiting:
        grant = db.session.get(Grant, run.grant_id) if not run.label else None
        if grant is not None:
            return grant_messages.default_account_note(db.session(), grant, integration.name)
    return None


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
