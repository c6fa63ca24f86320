"""Server-rendered pages (Scripts, the editor, Management); actions go through the JSON API
from small JS modules. The user's own Settings pages: pages_settings.py; runs: pages_runs.py."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from app import db
from app.errors import NotFound
from app.integrations import catalog_entry as catalog_rules
from app.integrations.catalog import load_catalog
from app.models import Account, Integration, Membership, Role, User, WebhookDelivery
from app.models.webhooks import WEBHOOK_EVENTS
from app.services import (
    account_rules,
    inputs,
    integration_views,
    invitations,
    oauth_clients,
    people,
    versions,
    webhook_deliveries,
    webhook_endpoints,
    webhooks,
)
from app.services import scripts as scripts_service
from app.services import usage as usage_service
from app.services.call_filters import CallFilters
from app.services.context import MemberContext
from app.web.security import login_required, memberships_of, require_member, require_user
from app.web.wording import delivery_in_words

bp = Blueprint("pages", __name__)


_LIMITS = {
    "key": catalog_rules.MAX_KEY_LENGTH,
    "name": catalog_rules.MAX_NAME_LENGTH,
    "label": catalog_rules.MAX_LABEL_LENGTH,
}


def render_page(template: str, member: MemberContext | None = None, **context: Any) -> str:
    """`template` with what every page's frame shows: the user, their facilities and
    invitations, the form limits (`member`: the facility the page is about, if any)."""
    user = member.user if member else require_user()
    return render_template(
        template,
        member=member,
        user=user,
        memberships=memberships_of(user),
        invitation_count=len(invitations.pending_for(db.session(), user=user)),
        Role=Role,
        limits=_LIMITS,
        label_characters=account_rules.LABEL_CHARACTERS,
        oauth_modes=catalog_rules.OAUTH_MODES,
        credential_modes=catalog_rules.CREDENTIAL_MODES,
        **context,
    )


def _form_rules() -> dict[str, Any]:
    """What the custom-integration form shows per auth mode, as the catalog says."""
    fields = {}
    for mode in sorted(catalog_rules.AUTH_MODES):
        used = set(catalog_rules.fields_for_mode(mode))
        if mode in catalog_rules.OAUTH_MODES:
            used |= {"client_id", "client_secret"}
        fields[mode] = sorted(used)
    return {
        "fields": fields,
        "credential_fields": dict(catalog_rules.DEFAULT_CREDENTIAL_FIELDS),
        "placements": {mode: _json_text(_placement_example(mode)) for mode in fields},
    }


# Where an API key goes differs by provider, so these modes have no default placement: the
# form shows an example that sends the mode's own fields ("Bearer {token}" sent none).
_KEY_PLACEMENTS = {
    "api_key": [{"location": "header", "name": "X-API-Key", "template": "{api_key}"}],
    "api_key_secret": [
        {"location": "header", "name": "X-API-Key", "template": "{api_key}"},
        {"location": "header", "name": "X-API-Secret", "template": "{api_secret}"},
    ],
}


def _placement_example(mode: str) -> list[dict[str, Any]]:
    """The placements example the custom form shows for an auth mode: its default, if any."""
    fields = catalog_rules.DEFAULT_CREDENTIAL_FIELDS.get(mode, ())
    default = catalog_rules.default_placements(mode, fields)
    return [catalog_rules.placement_dict(p) for p in default] or _KEY_PLACEMENTS.get(mode, [])


def _json_text(value: Any) -> str:
    """A JSON field's text for a form: empty when unset, None members left out (the
    validator reads a missing member as its default, not null)."""
    if isinstance(value, list):
        value = [
            {k: v for k, v in item.items() if v is not None} if isinstance(item, Mapping) else item
            for item in value
        ]
    return json.dumps(value, ensure_ascii=False) if value else ""


def _settings_values(view: Mapping[str, Any]) -> dict[str, Any]:
    """What an integration's Settings form starts with, from its admin view: each field as
    text, lists space-separated, JSON as JSON. The client secret and the default header and
    query values are write-only: only the saved names show (`default_headers_saved`)."""
    values = {
        name: view.get(name)
        for name in (
            "authorization_url",
            "token_url",
            "token_request_method",
            "token_auth_method",
            "revoke_url",
            "scope_separator",
            "pkce",
            "refresh_on_403",
            "client_id",
            "has_client_secret",
        )
    }
    for name in ("scopes", "credential_fields", "allowed_hosts"):
        values[name] = " ".join(view.get(name) or [])
    for name in ("placements", "parameters", "authorization_params", "verify", "whoami"):
        values[name] = _json_text(view.get(name))
    for name in ("default_headers", "default_query"):
        values[f"{name}_saved"] = view.get(name) or {}
    return values


def _integrations(member: MemberContext) -> list[Integration]:
    return list(
        db.session.scalars(
            select(Integration)
            .where(Integration.facility_id == member.facility.id)
            .order_by(Integration.name)
        )
    )


@bp.get("/favicon.ico")
def favicon() -> ResponseReturnValue:
    """The site icon, where browsers look for it without being told."""
    return current_app.send_static_file("favicon.ico")


@bp.get("/f/<slug>")
@login_required
def facility(slug: str) -> ResponseReturnValue:
    """A facility's own address (the slug every page's address holds) opens its scripts."""
    require_member(slug)
    return redirect(url_for("pages.scripts", slug=slug))


@bp.get("/f/<slug>/scripts")
@login_required
def scripts(slug: str) -> ResponseReturnValue:
    """Published scripts, each runnable with an input."""
    member = require_member(slug)
    published = [s for s in scripts_service.list_scripts(db.session(), member) if s.published]
    return render_page(
        "scripts.html",
        member,
        scripts=published,
        forms=scripts_service.run_forms(db.session(), published),
    )


@bp.get("/f/<slug>/editor")
@bp.get("/f/<slug>/editor/<int:script_id>")
@login_required
def editor(slug: str, script_id: int | None = None) -> ResponseReturnValue:
    """The script editor (scripters)."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id) if script_id else None
    all_scripts = scripts_service.list_scripts(db.session(), member)
    integrations = _integrations(member)
    latest = versions.latest_version(db.session(), script=script) if script else None
    return render_page(
        "editor.html",
        member,
        script=script,
        # The version the draft shown starts from (0: none yet): saves send it back, and
        # one saved meanwhile refuses them (edit_conflict) rather than being overwritten.
        version=latest.number if latest else 0,
        starter=_starter(integrations),
        scripts=all_scripts,
        integrations=[{"key": i.key, "name": i.name} for i in integrations],
        inputs=inputs.fields_from_schema(script.input_schema) if script else [],
        labels=_account_labels(member),
        examples=[_example(i) for i in integrations],
        # A live run's output reaches its row by the next heartbeat at the latest: a run
        # the panel picks up again is read once more after that (editor-page.js resume).
        store_ms=round(float(current_app.config["HEARTBEAT_S"]) * 1000),
    )


def _starter(integrations: list[Integration]) -> str:
    """A new script's first lines: the who-am-I request of one of the facility's
    integrations (the demo's `GET /me`), or, where none has one, lines that run as they
    are. It called the demo's integration everywhere: outside the demo, a new script's
    first run failed on "demo", an integration the facility does not have."""
    for integration in integrations:
        whoami = integration.whoami or {}
        if str(whoami.get("method", "")).upper() == "GET" and whoami.get("path"):
            path = json.dumps(str(whoami["path"]))
            return f'resp = integrations.get("{integration.key}", {path})\nresult = resp.json()\n'
    return 'print("Hello from Scriptbox")\nresult = {"hello": "world"}\n'


def _example(integration: Integration) -> dict[str, str]:
    """A first call to show in the editor's help, from the integration's catalog entry (a
    custom integration gets a call to its base URL)."""
    entry = load_catalog().get(integration.catalog_key or "")
    example = entry.example if entry else None
    method, path = (example.method, example.path) if example else ("GET", "/")
    body = f", json={json.dumps(dict(example.json))}" if example and example.json else ""
    call = (
        f'integrations.get("{integration.key}", "{path}")'
        if method == "GET" and not body
        else f'integrations.request("{integration.key}", "{method}", "{path}"{body})'
    )
    code = f"resp = {call}\nresp.raise_for_status()\nresult = resp.json()"
    return {"name": integration.name, "base_url": integration.base_url, "code": code}


def _account_labels(member: MemberContext) -> list[dict[str, str]]:
    """The user's own labelled accounts in the facility, for `account="…"` completion."""
    rows = db.session.execute(
        select(Account.label, Integration.name)
        .join(Integration, Integration.id == Account.integration_id)
        .where(
            Account.facility_id == member.facility.id,
            Account.user_id == member.user.id,
            Account.label != "",
        )
        .order_by(Account.label)
    ).all()
    return [{"label": label, "integration": name} for label, name in rows]


@bp.get("/f/<slug>/manage")
@login_required
def manage(slug: str) -> ResponseReturnValue:
    """Integrations, members and usage (admins)."""
    member = require_member(slug, Role.admin)
    masters = {
        integration_id: status
        for integration_id, status in db.session.execute(
            select(Account.integration_id, Account.status).where(
                Account.facility_id == member.facility.id, Account.owner_kind == "master"
            )
        )
    }
    integrations = _integrations(member)
    problems = {
        i.id: problem
        for i in integrations
        if (problem := oauth_clients.client_problem(db.session(), i)) is not None
    }
    endpoints = webhook_endpoints.list_endpoints(db.session(), facility_id=member.facility.id)
    deliveries = webhooks.list_deliveries(db.session(), facility_id=member.facility.id, limit=20)
    # While an attempt is in flight, next_attempt_at is only the sender's claim lease.
    sending = webhook_deliveries.in_flight(db.session(), deliveries)
    # "attempt 4 of 8": the sender's retry policy is built from the same setting.
    max_attempts = int(current_app.config["WEBHOOK_MAX_ATTEMPTS"])
    return render_page(
        "manage.html",
        member,
        integrations=integrations,
        masters=masters,
        members=people.members_of(db.session(), facility=member.facility),
        invited=invitations.pending_in(db.session(), facility=member.facility),
        problems=problems,
        webhook_endpoints=endpoints,
        # The delivery log names each endpoint by its URL (its id means nothing to a person).
        webhook_urls={e.id: e.url for e in endpoints},
        webhook_deliveries=deliveries,
        webhook_sending=sending,
        webhook_paused={e.id for e in endpoints if not e.active},
        # Each delivery's state in words beside its status ("failed 3 times (HTTP 503);
        # attempt 4 of 8"): "pending" alone read as if nothing had been tried yet.
        webhook_words={d.id: _delivery_words(d, max_attempts, sending) for d in deliveries},
        webhook_events=WEBHOOK_EVENTS,
        retention_days=current_app.config["RETENTION_DAYS"],
    )


def _delivery_words(
    delivery: WebhookDelivery, max_attempts: int, sending: Mapping[str, object]
) -> str:
    """A delivery's state in words (wording.delivery_in_words); one in flight says so, as
    its stored next attempt is then only the sender's claim lease."""
    allowed = delivery.attempts_allowed(max_attempts)
    if delivery.id in sending and not delivery.attempts:
        return f"sending attempt 1 of {allowed}"
    words = delivery_in_words(
        status=delivery.shown_status,
        attempts=delivery.attempts,
        allowed=allowed,
        response_code=delivery.response_code,
    )
    return f"{words}, sending now" if delivery.id in sending else words


@bp.get("/f/<slug>/manage/integrations/new")
@login_required
def new_integration(slug: str) -> ResponseReturnValue:
    """Add an integration from the catalog or by hand (admins)."""
    member = require_member(slug, Role.admin)
    catalog = sorted(load_catalog().values(), key=lambda entry: entry.name.lower())
    return render_page(
        "manage_new.html",
        member,
        catalog=catalog,
        form_rules=_form_rules(),
        redirect_uri=oauth_clients.redirect_uri(current_app.config["PUBLIC_URL"]),
    )


@bp.get("/f/<slug>/manage/integrations/<key>")
@login_required
def integration_settings(slug: str, key: str) -> ResponseReturnValue:
    """One integration's settings, master account and connection test (admins)."""
    member = require_member(slug, Role.admin)
    integration = db.session.scalar(
        select(Integration).where(
            Integration.facility_id == member.facility.id, Integration.key == key
        )
    )
    if integration is None:
        raise NotFound(f"no integration '{key}'")
    master = db.session.scalar(
        select(Account).where(
            Account.integration_id == integration.id, Account.owner_kind == "master"
        )
    )
    view = integration_views.integration_public_view(integration)
    return render_page(
        "manage_integration.html",
        member,
        integration=integration,
        view=view,
        values=_settings_values(view),
        form_rules=_form_rules(),
        master=master,
        client_problem=oauth_clients.client_problem(db.session(), integration),
        redirect_uri=oauth_clients.redirect_uri(current_app.config["PUBLIC_URL"]),
    )


@bp.get("/f/<slug>/manage/usage")
@login_required
def usage(slug: str) -> ResponseReturnValue:
    """Calls per integration per month as a chart with the quota line, and the quota (admins)."""
    member = require_member(slug, Role.admin)
    return render_page(
        "manage_usage.html",
        member,
        quota=member.facility.monthly_call_quota,
        max_quota=usage_service.MAX_QUOTA,
        months=6,
        has_integrations=bool(_integrations(member)),
    )


@bp.get("/f/<slug>/manage/calls")
@login_required
def call_log(slug: str) -> ResponseReturnValue:
    """The call log with filters (admins)."""
    member = require_member(slug, Role.admin)
    # A hand-edited filter the page cannot read is said by the form, as on the Runs page:
    # the page listed every call as if it were not there.
    filters = CallFilters.read(request.args)
    users = db.session.execute(
        select(User.id, User.name)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.facility_id == member.facility.id)
    ).all()
    all_scripts = scripts_service.list_scripts(db.session(), member)
    return render_page(
        "manage_calls.html",
        member,
        integrations=_integrations(member),
        users=users,
        scripts=all_scripts,
        filters=filters,
    )
