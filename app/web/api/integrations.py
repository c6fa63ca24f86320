"""A facility's integrations: list, create (catalog or custom), read, change, remove, test."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from flask import current_app
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr
from sqlalchemy import select

from app import db, extensions
from app.integrations.catalog_entry import (
    CREDENTIAL_MODES,
    MAX_ALLOWED_HOSTS,
    MAX_CREDENTIAL_LENGTH,
    MAX_EXTRA_ENTRIES,
    MAX_HEADER_NAME_LENGTH,
    MAX_HEADER_VALUE_LENGTH,
    MAX_URL_LENGTH,
)
from app.models import Account, Integration, Role
from app.services import (
    connections,
    integration_dependents,
    integration_views,
    oauth_clients,
)
from app.services import integrations_admin as admin
from app.services.connection_checks import test_connection, test_credentials
from app.web.api import paging
from app.web.api.accounts import AccountOut, account_out
from app.web.api.base import api_blueprint, integration_of, location
from app.web.openapi import Body, TextMap, spec
from app.web.openapi_answers import LOCATION_HEADER, Answer, list_of, reply
from app.web.security import require_member

log = logging.getLogger(__name__)
bp = api_blueprint("api_integrations")
TAGS = ("integrations",)

# Default headers, default query parameters and authorization parameters: a bounded number
# of names and values, each bounded (all of them go out with every call or sign-in).
ExtraMap = Annotated[
    dict[
        Annotated[StrictStr, Field(max_length=MAX_HEADER_NAME_LENGTH)],
        Annotated[StrictStr, Field(max_length=MAX_HEADER_VALUE_LENGTH)],
    ],
    Field(max_length=MAX_EXTRA_ENTRIES),
]
AllowedHosts = Annotated[
    list[Annotated[StrictStr, Field(max_length=MAX_URL_LENGTH)]],
    Field(max_length=MAX_ALLOWED_HOSTS),
]
Credential = Annotated[StrictStr, Field(max_length=MAX_CREDENTIAL_LENGTH)]


class IntegrationSettings(Body):
    """An integration's settings (DESIGN §5); the catalog validator checks the values.

    Keys not declared here pass through to that validator, which owns the full list.
    """

    model_config = ConfigDict(strict=True, extra="allow")

    key: StrictStr | None = None
    name: StrictStr | None = None
    auth_mode: StrictStr | None = None
    base_url: StrictStr | None = None
    authorization_url: StrictStr | None = None
    token_url: StrictStr | None = None
    revoke_url: StrictStr | None = None
    token_request_method: StrictStr | None = None
    token_auth_method: StrictStr | None = None
    scope_separator: StrictStr | None = None
    client_id: StrictStr | None = None
    client_secret: Credential | None = None
    scopes: list[StrictStr] | None = None
    credential_fields: list[StrictStr] | None = None
    allowed_hosts: AllowedHosts | None = None
    placements: list[dict[str, Any]] | None = None
    parameters: list[dict[str, Any]] | None = None
    authorization_params: ExtraMap | None = None
    default_headers: ExtraMap | None = None
    default_query: ExtraMap | None = None
    pkce: StrictBool | None = None
    refresh_on_403: StrictBool | None = None
    allow_private_network: StrictBool | None = None
    verify: dict[str, Any] | None = None
    whoami: dict[str, Any] | None = None
    accounts_per_user: StrictStr | None = None


class IntegrationCreate(IntegrationSettings):
    """A catalog entry (`catalog_key` + client and `overrides`) or every setting by hand.

    From a catalog entry, a missing or blank `key` is the entry's own key, and a missing or
    empty `client_secret` saves a public client (one the provider issued no secret); under
    `oauth2_client_credentials` it is a 400 on `client_secret`, as a client-credentials
    sign-in is the client id and secret alone."""

    catalog_key: StrictStr | None = None
    overrides: IntegrationSettings | None = None


class IntegrationOut(BaseModel):
    """An integration: admins see its settings (never the client secret), members only
    what connecting an account needs."""

    model_config = ConfigDict(extra="allow")
    key: str
    name: str
    auth_mode: str
    base_url: str | None = None
    client_id: str | None = None
    has_client_secret: bool | None = None


class IntegrationSaved(IntegrationOut):
    """An integration as saved, and who must connect again when the save sent its secrets
    to a new origin."""

    accounts_to_reconnect: int = Field(
        default=0,
        description="Accounts (master and members' own) whose credentials the save dropped:"
        " it sent secrets to an origin they were not issued for, so each must connect again",
    )
    reconnect_message: str | None = Field(
        default=None, description="The same in words, with the old and the new origins"
    )


class IntegrationWithAccounts(IntegrationOut):
    """An integration with its master account's state and the user's own accounts."""

    master_connected: bool
    master_status: str | None
    master_identity: str | None = None
    my_accounts: list[AccountOut]


class IntegrationWithRedirect(IntegrationOut):
    """For admins: with the OAuth redirect URI to register and a refused client, in words."""

    redirect_uri: str | None = None
    client_problem: str | None = None


class CredentialsTest(Body):
    """Key/password integrations: credentials typed for the test (never stored); without
    them the master account's are tried."""

    fields: dict[StrictStr, Credential] | None = None
    parameters: TextMap | None = None


class TestResult(BaseModel):
    """What the provider said about the client id/secret (ok: None when nothing to test)."""

    model_config = ConfigDict(extra="allow")
    ok: bool | None
    message: str


def _set_fields(settings: IntegrationSettings) -> dict[str, Any]:
    return settings.model_dump(exclude_unset=True, exclude={"catalog_key", "overrides"})


@bp.get("/f/<slug>/integrations")
@spec.validate(query=paging.Page, resp=reply(HTTP_200=list_of(IntegrationWithAccounts)), tags=TAGS)
def list_integrations(slug: str, query: paging.Page) -> Answer:
    """The facility's integrations (no secrets), with the user's own accounts, by name.

    Paginated: `limit`, `cursor` (see the `Next-Cursor` header).
    """
    member = require_member(slug)
    every = db.session.scalars(
        select(Integration).where(Integration.facility_id == member.facility.id)
    ).all()
    rows, after = paging.page_of(every, query, key=lambda i: [i.name, i.id], kinds=(str, int))
    accounts = db.session.scalars(
        select(Account).where(Account.facility_id == member.facility.id)
    ).all()
    result = []
    admin_view = member.can(Role.admin)
    for integration in rows:
        view = (
            integration_views.integration_public_view
            if admin_view
            else integration_views.integration_member_view
        )(integration)
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
        view["my_accounts"] = [
            account_out(a).model_dump()
            for a in accounts
            if a.integration_id == integration.id and a.user_id == member.user.id
        ]
        result.append(view)
    return paging.with_next(result, after)


@bp.post("/f/<slug>/integrations")
@spec.validate(resp=reply(HTTP_201=IntegrationOut, sends=(LOCATION_HEADER,)), tags=TAGS)
def create_integration(slug: str, json: IntegrationCreate) -> Answer:
    """Create an integration from the catalog or by hand (admins)."""
    member = require_member(slug, Role.admin)
    if json.catalog_key:
        integration = admin.create_from_catalog(
            db.session(),
            facility=member.facility,
            catalog_key=json.catalog_key,
            key=json.key,
            client_id=json.client_id,
            client_secret=json.client_secret,
            overrides=_set_fields(json.overrides) if json.overrides else {},
        )
    else:
        integration = admin.create_custom(
            db.session(), facility=member.facility, fields=_set_fields(json)
        )
    db.session.commit()
    shown_at = location("api_integrations.get_integration", slug=slug, key=integration.key)
    return integration_views.integration_public_view(integration), 201, shown_at


@bp.get("/f/<slug>/integrations/<key>")
@spec.validate(resp=reply(HTTP_200=IntegrationWithRedirect), tags=TAGS)
def get_integration(slug: str, key: str) -> Answer:
    """One integration: for admins its settings (no secrets) and redirect URI, for others
    only what connecting an account needs."""
    member = require_member(slug)
    integration = integration_of(member, key)
    if not member.can(Role.admin):
        return integration_views.integration_member_view(integration)
    view = integration_views.integration_public_view(integration)
    view["redirect_uri"] = oauth_clients.redirect_uri(current_app.config["PUBLIC_URL"])
    view["client_problem"] = oauth_clients.client_problem(db.session(), integration)
    return view


@bp.patch("/f/<slug>/integrations/<key>")
@spec.validate(resp=reply(HTTP_200=IntegrationSaved), tags=TAGS)
def update_integration(slug: str, key: str, json: IntegrationSettings) -> Answer:
    """Change an integration's settings (admins); a blank client secret keeps the old one.

    A change that sends secrets to a new origin (base URL, allowed hosts, token or revoke
    URL on another scheme, host or port) makes every connected account connect again (each
    active one is announced to the webhooks as `account.needs_reauth`); one that moves the
    token or revoke URL needs the client secret again, if one is saved (a 400 naming
    `client_secret`), and saved default values that look like credentials are sent again
    (a 400 naming `default_headers` or `default_query`)."""
    member = require_member(slug, Role.admin)
    integration = integration_of(member, key)
    change = admin.update_integration(db.session(), integration, _set_fields(json))
    db.session.commit()
    if change is not None:
        _announce_stale(change.newly_stale)
    view = integration_views.integration_public_view(integration)
    view["accounts_to_reconnect"] = change.accounts if change else 0
    view["reconnect_message"] = change.message if change else None
    return view


def _announce_stale(account_ids: tuple[int, ...]) -> None:
    # As a refused refresh does, once the change is committed: the embedding app hears, with
    # a link to sign in again. The save stands whatever happens here, so it is no 500.
    for account_id in account_ids:
        try:
            extensions.webhook_events().account_needs_reauth(account_id)
        except Exception:
            log.exception("could not announce that account %s needs a new sign-in", account_id)


@bp.delete("/f/<slug>/integrations/<key>")
@spec.validate(resp=reply("HTTP_204"), tags=TAGS)
def delete_integration(slug: str, key: str) -> Answer:
    """Remove an integration and its accounts (admins); each account is announced to the
    webhooks as `account.disconnected`."""
    member = require_member(slug, Role.admin)
    integration_dependents.delete_integration(db.session(), integration=integration_of(member, key))
    db.session.commit()
    return "", 204


@bp.post("/f/<slug>/integrations/<key>/test")
@spec.validate(resp=reply(HTTP_200=TestResult), tags=TAGS)
def test_integration(slug: str, key: str, json: CredentialsTest) -> Answer:
    """Ask the provider whether the client id/secret, or typed credentials (those sent for
    the test, else the master account's), work; its answer in words (admins)."""
    member = require_member(slug, Role.admin)
    integration = integration_of(member, key)
    if integration.auth_mode in CREDENTIAL_MODES:
        return test_credentials(
            integration,
            extensions.vault(),
            master=connections.master_account(db.session(), integration.id),
            fields=json.fields,
            parameters=json.parameters,
            http=extensions.outbound(),
        )
    return test_connection(integration, extensions.vault(), extensions.outbound())
