"""Connect links in the browser: /connect/<token> runs the sign-in of the user the link
was made for, with no Scriptbox session, then returns to the embedding app or says how
it went. The OAuth callback hands sign-ins started here back to `finish_oauth`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, session
from flask.typing import ResponseReturnValue

from app import db, extensions
from app.errors import AppError, LinkRefused, OAuthCallbackError, ValidationError
from app.models import Account, ConnectLink, Facility, Integration
from app.services import connect_links, connections, oauth_sign_in
from app.services.oauth_clients import redirect_uri
from app.web.security import check_csrf

bp = Blueprint("connect", __name__)

# The Flask-session key holding this browser's connect-link secret (not a sign-in).
_SECRET = "connect_link"
# OAuthState.purpose of sign-ins started from a connect link (a user's own account, or
# the facility's master account).
PURPOSE = "link"
MASTER_PURPOSE = "link_master"
PURPOSES = (PURPOSE, MASTER_PURPOSE)


def _failed(message: str, *, way_back: str | None = None) -> str:
    """The page a link's failed sign-in ends on (its next step is a new link); with a
    button back to the app that sent it when the link has one (`way_back`), for the
    person to press once they have read why."""
    return render_template(
        "signed_in.html",
        ok=False,
        message=message,
        purpose=PURPOSE,
        way_back=way_back,
        way_back_to=urlsplit(way_back).netloc if way_back else None,
    )


def _answer(
    link: ConnectLink, outcome: str, message: str, *, account: Account | None = None
) -> ResponseReturnValue:
    account_id = account.id if account is not None else None
    target = connect_links.finish(db.session(), link, outcome=outcome, account_id=account_id)
    db.session.commit()
    # A run waiting for this account (its grant.required webhook sent the link, or the
    # embedding app made one) resumes with it, or its call raises: refused. A master
    # account answers the prompts of calls that take it.
    if account is not None and outcome == "connected":
        extensions.grants().answer_connected(account)
    elif link.owner == "user" and outcome == "refused":
        extensions.grants().answer_matching(
            facility_id=link.facility_id,
            user_id=link.user_id,
            integration_id=link.integration_id,
            label=link.label,
            state="refused",
        )
    if target:
        return redirect(target)
    return render_template(
        "signed_in.html", ok=outcome == "connected", message=message, purpose=PURPOSE
    ), (200 if outcome == "connected" else 400)


@bp.route("/connect/<token>", methods=["GET", "POST"])
def open_link(token: str) -> ResponseReturnValue:
    """Show, start or continue (in the same browser) the sign-in a connect link stands for.

    A GET of a link not yet opened shows its page and binds nothing: a mail scanner or a
    chat's link preview fetches links before their person does. The page's button (a POST)
    opens it."""
    secret: str | None
    try:
        if request.method == "POST":
            check_csrf()
            link, secret = connect_links.open_link(
                db.session(), token=token, browser_secret=session.get(_SECRET)
            )
        else:
            link = connect_links.find_link(
                db.session(), token=token, browser_secret=session.get(_SECRET)
            )
            secret = session.get(_SECRET) if link.opened_at is not None else None
        connect_links.check_owner_allowed(db.session(), link)
    except AppError as exc:
        db.session.rollback()
        way_back = exc.way_back if isinstance(exc, LinkRefused) else None
        return _failed(exc.message, way_back=way_back), exc.status
    if secret is not None:
        session[_SECRET] = secret
    db.session.commit()
    integration = db.session.get(Integration, link.integration_id)
    facility = db.session.get(Facility, link.facility_id)
    assert integration is not None and facility is not None  # cascades delete the link
    page = {"link": link, "integration": integration, "facility_name": facility.name}
    if request.method == "POST" and request.form.get("refuse"):
        return _answer(link, "refused", "Nothing was connected.")
    if integration.auth_mode == "oauth2":
        wanted = {
            p["name"]: request.values.get(f"param_{p['name']}", "").strip()
            for p in integration.parameters
        }
        if secret is None or not all(wanted.values()):
            # The link's page: its button, and what is asked before going to the provider
            # (e.g. a Zendesk subdomain).
            return render_template("connect_link.html", **page, error=None, parameters_only=True)
        try:
            url = oauth_sign_in.start_authorization(
                db.session(),
                integration=integration,
                user_id=link.user_id,
                facility_id=link.facility_id,
                purpose=MASTER_PURPOSE if link.owner == "master" else PURPOSE,
                session_binding=connect_links.browser_binding(secret),
                redirect_uri=redirect_uri(current_app.config["PUBLIC_URL"]),
                vault=extensions.vault(),
                label=link.label,
                parameters=wanted,
            )
        except ValidationError as exc:  # a parameter the person may correct
            db.session.rollback()
            return render_template(
                "connect_link.html", **page, error=exc.whole_message, parameters_only=True
            ), 400
        db.session.commit()
        return redirect(url)
    error = None
    if request.method == "POST":
        try:
            account = connections.connect_with_credentials(
                db.session(),
                integration=integration,
                owner=link.owner,
                user_id=link.user_id,
                label=link.label,
                fields={name: request.form.get(name, "") for name in integration.credential_fields},
                parameters={
                    p["name"]: request.form.get(f"param_{p['name']}", "")
                    for p in integration.parameters
                },
                vault=extensions.vault(),
                http=extensions.outbound(),
            )
        except AppError as exc:  # shown on the form: the user may correct it
            db.session.rollback()
            error = exc.whole_message
        else:
            message = f"{integration.name} is connected."
            return _answer(link, "connected", message, account=account)
    return render_template(
        "connect_link.html", **page, error=error, parameters_only=False
    ), 400 if error else 200


def finish_oauth() -> ResponseReturnValue:
    """The OAuth callback of a sign-in started from a connect link (no user session)."""
    secret = session.get(_SECRET)
    binding = connect_links.browser_binding(secret) if secret else ""
    link = connect_links.link_of_browser(db.session(), browser_secret=secret)
    if link is not None and link.revoked_at is not None:
        # Withdrawn after its button was pressed: the provider's code is not exchanged.
        db.session.rollback()
        way_back = connect_links.return_url(link, status="revoked")
        return _failed(connect_links.WITHDRAWN, way_back=way_back), 403
    try:
        account, _state = oauth_sign_in.complete_callback(
            db.session(),
            query=request.args,
            session_binding=binding,
            redirect_uri=redirect_uri(current_app.config["PUBLIC_URL"]),
            vault=extensions.vault(),
            http=extensions.outbound(),
        )
    except OAuthCallbackError as exc:
        db.session.commit()  # the state is spent even when the sign-in failed
        if link is None:  # another browser, or the link is finished: nothing to report
            return _failed(exc.message), 400
        refused = request.args.get("error") == "access_denied"
        return _answer(link, "refused" if refused else "error", exc.message)
    if link is None:
        db.session.rollback()
        return _failed("This connect link was already used."), 400
    integration = db.session.get(Integration, account.integration_id)
    name = integration.name if integration else "the service"
    return _answer(link, "connected", f"{name} is connected.", account=account)
