"""The REST API (JSON; session or API-token auth): scripts, runs, integrations, accounts.

Views are thin: parse, check the role, call a service, commit once.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from app import db, extensions
from app.errors import NotFound, ValidationError
from app.integrations.catalog import CREDENTIAL_MODES
from app.lifecycle import is_final
from app.models import Account, ApiToken, CallLog, Integration, Role
from app.services import disconnection
from app.services import inputs as script_inputs
from app.services import readiness as readiness_service
from app.services import scripts as scripts_service
from app.services.context import MemberContext
from app.web import inputs
from app.web.security import (
    check_csrf,
    hash_token,
    memberships_of,
    new_api_token,
    require_member,
    require_user,
    session_binding,
)

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.before_request
def _authenticate() -> None:
    require_user()
    check_csrf()


def _integration(member: MemberContext, key: str) -> Integration:
    integration = db.session.scalar(
        select(Integration).where(
            Integration.facility_id == member.facility.id, Integration.key == key
        )
    )
    if integration is None:
        raise NotFound(f"no integration '{key}' in {member.facility.name}")
    return integration


# -- me and API tokens ----------------------------------------------------------------


@bp.get("/me")
def me() -> ResponseReturnValue:
    """The signed-in user and their facilities."""
    user = require_user()
    return jsonify(
        {
            "id": user.id,
            "email": user.email,
            "name": user.name,
            "facilities": [
                {"slug": f.slug, "name": f.name, "role": role.value}
                for f, role in memberships_of(user)
            ],
        }
    )


@bp.post("/tokens")
def create_token() -> ResponseReturnValue:
    """Create an API token; the token is in this answer only."""
    user = require_user()
    name = inputs.text(inputs.body(), "name").strip() or "API token"
    token = new_api_token()
    db.session.add(
        ApiToken(user_id=user.id, name=name[:120], token_hash=hash_token(token), prefix=token[:8])
    )
    db.session.commit()
    return jsonify({"name": name, "token": token}), 201


@bp.delete("/tokens/<int:token_id>")
def delete_token(token_id: int) -> ResponseReturnValue:
    """Revoke one of the user's API tokens."""
    user = require_user()
    row = db.session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise NotFound("no such token")
    db.session.delete(row)
    db.session.commit()
    return "", 204


# -- scripts ------------------------------------------------------------------------------


def _script_dict(script: Any, *, with_source: bool) -> dict[str, Any]:
    data = {
        "id": script.id,
        "name": script.name,
        "description": script.description,
        "published": script.published,
        "published_version": script.published_version,
        "updated_at": script.updated_at.isoformat() if script.updated_at else None,
    }
    if with_source:
        data["source"] = script.source
        data["inputs"] = script_inputs.fields_from_schema(script.input_schema)
        data["input_schema"] = script.input_schema
    return data


def _input_fields(body: dict[str, Any]) -> list[Any] | None:
    fields = body.get("inputs")
    if fields is not None and not isinstance(fields, list):
        raise ValidationError("inputs must be a list of fields", field="inputs")
    return fields


@bp.get("/f/<slug>/scripts")
def list_scripts(slug: str) -> ResponseReturnValue:
    """Scripts the user may see in the facility."""
    member = require_member(slug)
    rows = scripts_service.list_scripts(db.session(), member)
    return jsonify([_script_dict(s, with_source=member.can(Role.scripter)) for s in rows])


@bp.post("/f/<slug>/scripts")
def create_script(slug: str) -> ResponseReturnValue:
    """Create a script (scripters)."""
    member = require_member(slug, Role.scripter)
    body = inputs.body()
    script = scripts_service.create_script(
        db.session(),
        member,
        name=inputs.text(body, "name"),
        source=inputs.text(body, "source"),
        description=inputs.text(body, "description"),
        input_fields=_input_fields(body),
        published=bool(inputs.boolean(body, "published")),
    )
    db.session.commit()
    return jsonify(_script_dict(script, with_source=True)), 201


@bp.get("/f/<slug>/scripts/<int:script_id>")
def get_script(slug: str, script_id: int) -> ResponseReturnValue:
    """One script."""
    member = require_member(slug)
    script = scripts_service.get_script(db.session(), member, script_id)
    return jsonify(_script_dict(script, with_source=member.can(Role.scripter)))


@bp.patch("/f/<slug>/scripts/<int:script_id>")
def update_script(slug: str, script_id: int) -> ResponseReturnValue:
    """Change name, source, inputs, description or published (scripters); publishing
    publishes the newest version."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    body = inputs.body()
    scripts_service.update_script(
        db.session(),
        member,
        script,
        name=inputs.optional_text(body, "name"),
        source=inputs.optional_text(body, "source"),
        description=inputs.optional_text(body, "description"),
        input_fields=_input_fields(body),
        published=inputs.boolean(body, "published"),
    )
    db.session.commit()
    return jsonify(_script_dict(script, with_source=True))


@bp.delete("/f/<slug>/scripts/<int:script_id>")
def delete_script(slug: str, script_id: int) -> ResponseReturnValue:
    """Delete a script (scripters)."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    scripts_service.delete_script(db.session(), member, script)
    db.session.commit()
    return "", 204


@bp.post("/f/<slug>/readiness")
def readiness(slug: str) -> ResponseReturnValue:
    """Which integrations a source uses and whether the user or facility has accounts."""
    member = require_member(slug, Role.scripter)
    source = inputs.text(inputs.body(), "source")
    return jsonify(readiness_service.integration_readiness(db.session(), member, source))


# -- runs ---------------------------------------------------------------------------------


@bp.post("/f/<slug>/runs")
def create_run(slug: str) -> ResponseReturnValue:
    """Start a run of a script (or of source, for scripters); `wait` seconds to block."""
    member = require_member(slug)
    body = inputs.body()
    script_id = (
        inputs.integer(body["script_id"], "script_id")
        if body.get("script_id") is not None
        else None
    )
    source = inputs.optional_text(body, "source")
    wait = min(max(inputs.number(body, "wait", default=0.0), 0.0), 300.0)
    # A run started from a page with an open websocket may prompt; API runs may not.
    interactive = bool(inputs.boolean(body, "interactive")) and request.authorization is None
    run = scripts_service.create_run(
        db.session(),
        member,
        script_id=script_id,
        source=source,
        run_input=body.get("input"),
        interactive=interactive,
    )
    db.session.commit()
    queue = extensions.run_queue()
    queue.submit(run.id)
    if wait:
        queue.wait(run.id, wait)
        db.session.refresh(run)
    return jsonify(run.to_dict()), 200 if is_final(run.status) else 201


@bp.get("/f/<slug>/runs")
def list_runs(slug: str) -> ResponseReturnValue:
    """Recent runs (own; admins see everyone's)."""
    member = require_member(slug)
    script_id = request.args.get("script_id")
    rows = scripts_service.list_runs(
        db.session(),
        member,
        script_id=inputs.integer(script_id, "script_id") if script_id is not None else None,
        limit=inputs.page_limit(request.args),
    )
    return jsonify([r.to_dict() for r in rows])


@bp.get("/f/<slug>/runs/<run_id>")
def get_run(slug: str, run_id: str) -> ResponseReturnValue:
    """One run."""
    member = require_member(slug)
    return jsonify(scripts_service.get_run(db.session(), member, run_id).to_dict())


@bp.post("/f/<slug>/runs/<run_id>/cancel")
def cancel_run(slug: str, run_id: str) -> ResponseReturnValue:
    """Cancel a run in any state that has not ended (queued, running, waiting, parked)."""
    member = require_member(slug)
    run = scripts_service.get_run(db.session(), member, run_id)
    cancelling = extensions.run_queue().cancel(run.id)
    db.session.refresh(run)
    return jsonify({"id": run.id, "cancelling": cancelling, "status": run.status})


@bp.get("/f/<slug>/runs/<run_id>/calls")
def run_calls(slug: str, run_id: str) -> ResponseReturnValue:
    """The integration calls a run made (from the call log)."""
    member = require_member(slug)
    run = scripts_service.get_run(db.session(), member, run_id)
    rows = db.session.scalars(
        select(CallLog)
        .where(CallLog.run_id == run.id, CallLog.facility_id == member.facility.id)
        .order_by(CallLog.id)
    )
    return jsonify([row.to_dict() for row in rows])


# -- grants -------------------------------------------------------------------------------


@bp.post("/f/<slug>/grants/<grant_id>/refuse")
def refuse_grant(slug: str, grant_id: str) -> ResponseReturnValue:
    """Refuse a sign-in prompt: waiting runs get NoIntegrationGrant."""
    member = require_member(slug)
    from app.models import Grant

    grant = db.session.get(Grant, grant_id)
    if grant is None or grant.user_id != member.user.id or grant.facility_id != member.facility.id:
        raise NotFound("no such prompt")
    changed = extensions.grants().resolve(grant.id, "refused")
    return jsonify({"grant_id": grant.id, "state": "refused" if changed else grant.state})


# -- facility administration --------------------------------------------------------------


@bp.get("/f/<slug>/calls")
def call_log(slug: str) -> ResponseReturnValue:
    """The facility's call log with filters: integration, user, script, status (admins)."""
    member = require_member(slug, Role.admin)
    query = select(CallLog).where(CallLog.facility_id == member.facility.id)
    args = request.args
    if args.get("integration"):
        query = query.where(CallLog.integration_key == args["integration"])
    if args.get("user") is not None:
        query = query.where(CallLog.user_id == inputs.integer(args["user"], "user"))
    if args.get("script") is not None:
        query = query.where(CallLog.script_id == inputs.integer(args["script"], "script"))
    status = args.get("status")
    if status == "error":
        query = query.where((CallLog.error_code.is_not(None)) | (CallLog.status >= 400))
    elif status == "ok":
        query = query.where(CallLog.error_code.is_(None), CallLog.status < 400)
    rows = db.session.scalars(query.order_by(CallLog.id.desc()).limit(200))
    return jsonify([row.to_dict() for row in rows])


# -- integrations and accounts ------------------------------------------------------------


@bp.get("/f/<slug>/integrations")
def list_integrations(slug: str) -> ResponseReturnValue:
    """The facility's integrations (no secrets), with the user's own accounts."""
    member = require_member(slug)
    from app.services.integrations_admin import integration_member_view, integration_public_view

    rows = db.session.scalars(
        select(Integration)
        .where(Integration.facility_id == member.facility.id)
        .order_by(Integration.name)
    ).all()
    accounts = db.session.scalars(
        select(Account).where(Account.facility_id == member.facility.id)
    ).all()
    result = []
    admin = member.can(Role.admin)
    for integration in rows:
        view = (integration_public_view if admin else integration_member_view)(integration)
        mine = [
            a
            for a in accounts
            if a.integration_id == integration.id and a.user_id == member.user.id
        ]
        master = next(
            (
                a
                for a in accounts
                if a.integration_id == integration.id and a.owner_kind == "master"
            ),
            None,
        )
        view["master_connected"] = master is not None and master.status == "active"
        view["master_status"] = master.status if master is not None else None
        view["master_identity"] = master.identity if master is not None else None
        view["my_accounts"] = [_account_dict(a) for a in mine]
        result.append(view)
    return jsonify(result)


def _account_dict(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "label": account.label,
        "kind": account.kind,
        "status": account.status,
        "identity": account.identity,
        "parameters": account.parameters,
        "last_used_at": account.last_used_at.isoformat() if account.last_used_at else None,
    }


@bp.post("/f/<slug>/integrations")
def create_integration(slug: str) -> ResponseReturnValue:
    """Create an integration from the catalog or by hand (admins)."""
    member = require_member(slug, Role.admin)
    from app.services import integrations_admin as admin

    body = inputs.body()
    if inputs.optional_text(body, "catalog_key"):
        integration = admin.create_from_catalog(
            db.session(),
            facility=member.facility,
            catalog_key=inputs.text(body, "catalog_key"),
            key=inputs.optional_text(body, "key"),
            client_id=inputs.optional_text(body, "client_id"),
            client_secret=inputs.optional_text(body, "client_secret"),
            overrides=inputs.integration_fields(inputs.mapping(body, "overrides")),
        )
    else:
        fields = inputs.integration_fields(body)
        integration = admin.create_custom(db.session(), facility=member.facility, fields=fields)
    db.session.commit()
    return jsonify(admin.integration_public_view(integration)), 201


@bp.get("/f/<slug>/integrations/<key>")
def get_integration(slug: str, key: str) -> ResponseReturnValue:
    """One integration: for admins its settings (no secrets) and redirect URI, for others
    only what connecting an account needs."""
    member = require_member(slug)
    from app.services import integrations_admin as admin

    integration = _integration(member, key)
    if not member.can(Role.admin):
        return jsonify(admin.integration_member_view(integration))
    view = admin.integration_public_view(integration)
    view["redirect_uri"] = admin.redirect_uri(current_app.config["PUBLIC_URL"])
    view["client_problem"] = admin.client_problem(db.session(), integration)
    return jsonify(view)


@bp.patch("/f/<slug>/integrations/<key>")
def update_integration(slug: str, key: str) -> ResponseReturnValue:
    """Change an integration's settings (admins); a blank client secret keeps the old one."""
    member = require_member(slug, Role.admin)
    from app.services import integrations_admin as admin

    integration = _integration(member, key)
    admin.update_integration(db.session(), integration, inputs.integration_fields(inputs.body()))
    db.session.commit()
    return jsonify(admin.integration_public_view(integration))


@bp.delete("/f/<slug>/integrations/<key>")
def delete_integration(slug: str, key: str) -> ResponseReturnValue:
    """Remove an integration and its accounts (admins)."""
    member = require_member(slug, Role.admin)
    db.session.delete(_integration(member, key))
    db.session.commit()
    return "", 204


@bp.post("/f/<slug>/integrations/<key>/test")
def test_integration(slug: str, key: str) -> ResponseReturnValue:
    """Ask the provider whether the client id/secret, or typed credentials (those sent for
    the test, else the master account's), work; its answer in words (admins)."""
    member = require_member(slug, Role.admin)
    from app.services import connections
    from app.services.connection_checks import test_connection, test_credentials

    integration = _integration(member, key)
    if integration.auth_mode in CREDENTIAL_MODES:
        body = inputs.body()
        # Absent fields mean "test the master account's"; sent ones are tested instead.
        fields = None
        if body.get("fields") is not None:
            fields = inputs.text_mapping(body, "fields", item_field="{key}")
        parameters = inputs.text_mapping(body, "parameters", item_field="param_{key}")
        return jsonify(
            test_credentials(
                integration,
                extensions.vault(),
                master=connections.master_account(db.session(), integration.id),
                fields=fields,
                parameters=parameters,
                http=extensions.outbound(),
            )
        )
    return jsonify(test_connection(integration, extensions.vault(), extensions.outbound()))


def _connect(member: MemberContext, integration: Integration, *, owner: str) -> ResponseReturnValue:
    from app.services import connections
    from app.services.integrations_admin import redirect_uri

    body = inputs.body()
    label = inputs.text(body, "label")  # a person's label is checked by the service
    if owner != "user":
        label = ""  # the master account has no label
    parameters = inputs.text_mapping(body, "parameters", item_field="param_{key}")
    fields = inputs.text_mapping(body, "fields", item_field="{key}")
    return_to = inputs.optional_text(body, "return_to")
    if integration.auth_mode == "oauth2":
        url = connections.start_authorization(
            db.session(),
            integration=integration,
            user_id=member.user.id,
            facility_id=member.facility.id,
            purpose="master" if owner == "master" else "api",
            session_binding=session_binding(),
            redirect_uri=redirect_uri(current_app.config["PUBLIC_URL"]),
            vault=extensions.vault(),
            label=label,
            parameters=parameters,
            return_to=return_to,
            allowed_return_origins=current_app.config["ALLOWED_RETURN_ORIGINS"],
        )
        db.session.commit()
        return jsonify({"authorization_url": url})
    if integration.auth_mode == "oauth2_client_credentials":
        if owner != "master":
            raise ValidationError("this integration connects once for the whole facility")
        account = connections.connect_client_credentials(
            db.session(), integration=integration, vault=extensions.vault(),
            http=extensions.outbound(),
        )
    else:
        account = connections.connect_with_credentials(
            db.session(),
            integration=integration,
            owner=owner,
            user_id=member.user.id,
            label=label,
            fields=fields,
            parameters=parameters,
            vault=extensions.vault(),
            http=extensions.outbound(),
        )
    db.session.commit()
    return jsonify(_account_dict(account)), 201


def _remove_anyway() -> bool:
    """`?remove_anyway=1`: disconnect even though the provider did not revoke the token."""
    return request.args.get("remove_anyway") in ("1", "true")


@bp.post("/f/<slug>/integrations/<key>/master")
def connect_master(slug: str, key: str) -> ResponseReturnValue:
    """Connect the facility's master account (admins)."""
    member = require_member(slug, Role.admin)
    return _connect(member, _integration(member, key), owner="master")


@bp.delete("/f/<slug>/integrations/<key>/master")
def disconnect_master(slug: str, key: str) -> ResponseReturnValue:
    """Disconnect the master account, revoking it at the provider (admins)."""
    member = require_member(slug, Role.admin)
    from app.services import connections

    account = connections.master_account(db.session(), _integration(member, key).id)
    if account is None:
        raise NotFound("no master account is connected")
    disconnection.disconnect(
        db.session(), account, extensions.vault(), extensions.outbound(),
        remove_anyway=_remove_anyway(),
    )
    db.session.commit()
    return "", 204


@bp.post("/f/<slug>/integrations/<key>/accounts")
def connect_own(slug: str, key: str) -> ResponseReturnValue:
    """Connect the user's own account: credentials, or an authorization URL for OAuth2."""
    member = require_member(slug)
    return _connect(member, _integration(member, key), owner="user")


@bp.post("/f/<slug>/integrations/<key>/accounts/code")
def connect_with_code(slug: str, key: str) -> ResponseReturnValue:
    """Complete the user's account with an authorization code obtained elsewhere."""
    member = require_member(slug)
    from app.services import connections

    body = inputs.body()
    code, redirect = inputs.text(body, "code"), inputs.text(body, "redirect_uri")
    if not code or not redirect:
        raise ValidationError("send code and the redirect_uri it was issued for", field="code")
    code_verifier = inputs.optional_text(body, "code_verifier")
    label = inputs.text(body, "label")
    parameters = inputs.text_mapping(body, "parameters", item_field="param_{key}")
    account = connections.connect_with_code(
        db.session(),
        integration=_integration(member, key),
        user_id=member.user.id,
        facility_id=member.facility.id,
        code=code,
        redirect_uri=redirect,
        code_verifier=code_verifier,
        label=label,
        parameters=parameters,
        vault=extensions.vault(),
        http=extensions.outbound(),
    )
    db.session.commit()
    return jsonify(_account_dict(account)), 201


@bp.get("/f/<slug>/accounts")
def my_accounts(slug: str) -> ResponseReturnValue:
    """The user's own accounts in the facility."""
    member = require_member(slug)
    rows = db.session.scalars(
        select(Account).where(
            Account.facility_id == member.facility.id, Account.user_id == member.user.id
        )
    )
    return jsonify([_account_dict(a) for a in rows])


@bp.delete("/f/<slug>/accounts/<int:account_id>")
def disconnect_own(slug: str, account_id: int) -> ResponseReturnValue:
    """Disconnect one of the user's own accounts."""
    member = require_member(slug)

    account = db.session.get(Account, account_id)
    if (
        account is None
        or account.facility_id != member.facility.id
        or account.user_id != member.user.id
    ):
        raise NotFound("no such account")
    disconnection.disconnect(
        db.session(), account, extensions.vault(), extensions.outbound(),
        remove_anyway=_remove_anyway(),
    )
    db.session.commit()
    return "", 204
