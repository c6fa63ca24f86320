"""The OAuth callback and the sign-in pages a grant prompt opens."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request
from flask.typing import ResponseReturnValue

from app import db, extensions
from app.errors import AppError, NotFound, OAuthCallbackError
from app.models import Grant, Integration, Role
from app.services import connections, grant_messages, oauth_sign_in
from app.web import connect
from app.web.security import (
    check_csrf,
    login_required,
    require_member,
    require_user,
    session_binding,
)

bp = Blueprint("oauth", __name__)


def _redirect_uri() -> str:
    from app.services.oauth_clients import redirect_uri

    return redirect_uri(str(current_app.config["PUBLIC_URL"]))


@bp.get("/oauth/callback")
def callback() -> ResponseReturnValue:
    """Finish an authorization: a connect link's (no session) or a signed-in user's."""
    purpose = oauth_sign_in.state_purpose(db.session(), request.args.get("state", ""))
    if purpose in connect.PURPOSES:
        return connect.finish_oauth()
    return _signed_in_callback(purpose)


@login_required
def _signed_in_callback(purpose: str | None) -> ResponseReturnValue:
    """Finish a signed-in user's authorization: store the account, resolve the grant."""
    require_user()
    try:
        account, state = oauth_sign_in.complete_callback(
            db.session(),
            query=request.args,
            session_binding=session_binding(),
            redirect_uri=_redirect_uri(),
            vault=extensions.vault(),
            http=extensions.outbound(),
        )
    except OAuthCallbackError as exc:
        db.session.commit()  # the state is spent even when the sign-in failed
        return render_template(
            "signed_in.html", ok=False, message=exc.message, purpose=purpose
        ), 400
    db.session.commit()
    if state.grant_id:
        extensions.grants().resolve(state.grant_id, "granted", account.id)
    else:  # connected in Settings: a run waiting for this account goes on too
        extensions.grants().answer_connected(account)
    if state.return_to:
        return redirect(state.return_to)
    integration = db.session.get(Integration, account.integration_id)
    name = integration.name if integration else "the service"
    return render_template(
        "signed_in.html", ok=True, message=f"{name} is connected.", purpose=state.purpose
    )


def _grant_for(slug: str, grant_id: str) -> tuple[Grant, Integration]:
    member = require_member(slug, Role.member)
    grant = db.session.get(Grant, grant_id)
    if grant is None or grant.user_id != member.user.id or grant.facility_id != member.facility.id:
        raise NotFound("this sign-in prompt is not yours or no longer exists")
    integration = db.session.get(Integration, grant.integration_id)
    assert integration is not None
    return grant, integration


def _account_note(grant: Grant, integration: Integration) -> str | None:
    """The prompt's note on the person's labelled accounts, as the in-page prompt says it."""
    return grant_messages.default_account_note(db.session(), grant, integration.name)


@bp.route("/f/<slug>/grants/<grant_id>/sign-in", methods=["GET", "POST"])
@login_required
def grant_sign_in(slug: str, grant_id: str) -> ResponseReturnValue:
    """Opened by the prompt's Sign in: OAuth2 goes to the provider, key/Basic show a form."""
    grant, integration = _grant_for(slug, grant_id)
    if grant.state != "pending":
        return render_template(
            "signed_in.html",
            ok=grant.state == "granted",
            message=f"This prompt is already {grant.state}.",
            purpose="grant",
        ), 409
    member = require_member(slug)
    if integration.auth_mode == "oauth2":
        wanted = {
            p["name"]: request.args.get(f"param_{p['name']}", "").strip()
            for p in integration.parameters
        }
        if not all(wanted.values()):
            # e.g. a Zendesk subdomain: asked before going to the provider.
            return render_template(
                "credentials_form.html",
                integration=integration,
                grant=grant,
                error=None,
                parameters_only=True,
                account_note=_account_note(grant, integration),
            )
        url = oauth_sign_in.start_authorization(
            db.session(),
            integration=integration,
            user_id=member.user.id,
            facility_id=member.facility.id,
            purpose="grant",
            session_binding=session_binding(),
            redirect_uri=_redirect_uri(),
            vault=extensions.vault(),
            label=grant.label,
            parameters=wanted,
            grant_id=grant.id,
        )
        db.session.commit()
        return redirect(url)
    error = None
    if request.method == "POST":
        check_csrf()
        fields = {name: request.form.get(name, "") for name in integration.credential_fields}
        params = {
            p["name"]: request.form.get(f"param_{p['name']}", "") for p in integration.parameters
        }
        try:
            account = connections.connect_with_credentials(
                db.session(),
                integration=integration,
                owner="user",
                user_id=member.user.id,
                label=grant.label,
                fields=fields,
                parameters=params,
                vault=extensions.vault(),
                http=extensions.outbound(),
            )
        except AppError as exc:  # shown on the form: the person may correct it
            db.session.rollback()
            error = exc.whole_message
        else:
            db.session.commit()
            extensions.grants().resolve(grant.id, "granted", account.id)
            return render_template(
                "signed_in.html",
                ok=True,
                message=f"{integration.name} is connected.",
                purpose="grant",
            )
    return render_template(
        "credentials_form.html",
        integration=integration,
        grant=grant,
        error=error,
        account_note=_account_note(grant, integration),
    ), 400 if error else 200
