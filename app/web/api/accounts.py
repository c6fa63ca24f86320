"""Accounts: connect the master account or the user's own (credentials, OAuth, a code)."""

from __future__ import annotations

from typing import Any, Literal

from flask import current_app
from pydantic import BaseModel, StrictStr
from sqlalchemy import select

from app import db, extensions
from app.errors import NotFound, ValidationError
from app.models import Account, Integration, Role
from app.models._types import iso
from app.services import connections, disconnection, oauth_sign_in
from app.services.context import MemberContext
from app.services.oauth_clients import redirect_uri
from app.web.api import paging
from app.web.api.base import api_blueprint, integration_of
from app.web.api.connect_links import new_link
from app.web.openapi import Body, Query, TextMap, spec
from app.web.openapi_answers import Answer, ErrorBody, list_of, reply
from app.web.security import current_identity, require_member, session_binding

bp = api_blueprint("api_accounts")
TAGS = ("accounts",)


class AccountOut(BaseModel):
    """A connected account (never its credentials)."""

    id: int
    label: str | None
    kind: str
    status: str
    # Who the account is at the service (its who-am-I answer), when known.
    identity: str | None = None
    parameters: dict[str, Any] | None
    last_used_at: str | None


class Connect(Body):
    """How to connect: credentials and parameters, or (OAuth2) where to return after sign-in."""

    label: StrictStr = ""
    # Checked by the service, which names the credential field that is wrong.
    fields: dict[StrictStr, Any] | None = None
    parameters: TextMap | None = None
    return_to: StrictStr | None = None


# The 502s of these operations, as the document describes them (app.errors).
PROVIDER_REFUSED = (
    ErrorBody,
    "`provider_error`: the provider refused the code or the client's token request; the"
    " message says what it answered",
)
REVOCATION_FAILED = (
    ErrorBody,
    "`revocation_failed`: the provider refused to revoke the token or could not be reached"
    " (`reachable`), so the account was kept: try again, or send `remove_anyway=1`",
)

class AuthorizationUrl(BaseModel):
    """Where to send the user to sign in at the provider."""

    authorization_url: str


class Removal(Query):
    """`remove_anyway=1`: disconnect even though the provider did not revoke the token."""

    # Anything else was read as "no" ("yes" kept the account a person asked to remove).
    remove_anyway: Literal["1", "true", "0", "false"] | None = None

    @property
    def anyway(self) -> bool:
        """Whether the caller asked to remove the account whatever the provider says."""
        return self.remove_anyway in ("1", "true")


class ConnectWithCode(Body):
    """An authorization code obtained elsewhere (a native app) and what it was issued for."""

    code: StrictStr = ""
    redirect_uri: StrictStr = ""
    code_verifier: StrictStr | None = None
    label: StrictStr = ""
    parameters: TextMap | None = None


def account_out(account: Account) -> AccountOut:
    """The API shape of an account."""
    return AccountOut(
        id=account.id,
        label=account.label,
        kind=account.kind,
        status=account.status,
        identity=account.identity,
        parameters=account.parameters,
        last_used_at=iso(account.last_used_at),
    )


def _connect(
    member: MemberContext, integration: Integration, body: Connect, *, owner: str
) -> Answer:
    # The master account has no label; the service checks the user's.
    label = body.label if owner == "user" else ""
    parameters = body.parameters or {}
    identity = current_identity()
    if integration.auth_mode == "oauth2" and identity and identity.via_token:
        # An API caller has no browser session to bind the OAuth state to: its user (the
        # admin, for the master account) signs in through a connect link instead, in
        # whatever browser opens it.
        link = new_link(
            member,
            integration.key,
            user_id=None,
            label=label,
            return_to=body.return_to,
            owner=owner,
        )
        db.session.commit()
        return AuthorizationUrl(authorization_url=link.url)
    if integration.auth_mode == "oauth2":
        url = oauth_sign_in.start_authorization(
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
            return_to=body.return_to,
            allowed_return_origins=current_app.config["ALLOWED_RETURN_ORIGINS"],
        )
        db.session.commit()
        return AuthorizationUrl(authorization_url=url)
    if integration.auth_mode == "oauth2_client_credentials":
        if owner != "master":
            raise ValidationError("this integration connects once for the whole facility")
        account = connections.connect_client_credentials(
            db.session(),
            integration=integration,
            vault=extensions.vault(),
            http=extensions.outbound(),
        )
    else:
        if body.fields is None and integration.credential_fields:
            # Not "enter the api key" for a key sent beside `fields` rather than in it.
            example = ", ".join(f'"{name}": "..."' for name in integration.credential_fields)
            raise ValidationError(
                f"send the credentials in fields: {{{example}}}", field="fields"
            )
        account = connections.connect_with_credentials(
            db.session(),
            integration=integration,
            owner=owner,
            user_id=member.user.id,
            label=label,
            fields=body.fields or {},
            parameters=parameters,
            vault=extensions.vault(),
            http=extensions.outbound(),
        )
    db.session.commit()
    extensions.grants().answer_connected(account)  # runs waiting for it go on
    return account_out(account), 201


@bp.post("/f/<slug>/integrations/<key>/master")
@spec.validate(
    resp=reply(HTTP_200=AuthorizationUrl, HTTP_201=AccountOut, HTTP_502=PROVIDER_REFUSED),
    tags=TAGS,
)
def connect_master(slug: str, key: str, json: Connect) -> Answer:
    """Connect the facility's master account (admins)."""
    member = require_member(slug, Role.admin)
    return _connect(member, integration_of(member, key), json, owner="master")


@bp.delete("/f/<slug>/integrations/<key>/master")
@spec.validate(query=Removal, resp=reply("HTTP_204", HTTP_502=REVOCATION_FAILED), tags=TAGS)
def disconnect_master(slug: str, key: str, query: Removal) -> Answer:
    """Disconnect the master account, revoking it at the provider (admins)."""
    member = require_member(slug, Role.admin)
    account = connections.master_account(db.session(), integration_of(member, key).id)
    if account is None:
        raise NotFound("no master account is connected")
    disconnection.disconnect(
        db.session(), account, extensions.vault(), extensions.outbound(), remove_anyway=query.anyway
    )
    db.session.commit()
    return "", 204


@bp.post("/f/<slug>/integrations/<key>/accounts")
@spec.validate(
    resp=reply(HTTP_200=AuthorizationUrl, HTTP_201=AccountOut, HTTP_502=PROVIDER_REFUSED),
    tags=TAGS,
)
def connect_own(slug: str, key: str, json: Connect) -> Answer:
    """Connect the user's own account: credentials, or an authorization URL for OAuth2."""
    member = require_member(slug)
    return _connect(member, integration_of(member, key), json, owner="user")


@bp.post("/f/<slug>/integrations/<key>/accounts/code")
@spec.validate(resp=reply(HTTP_201=AccountOut, HTTP_502=PROVIDER_REFUSED), tags=TAGS)
def connect_with_code(slug: str, key: str, json: ConnectWithCode) -> Answer:
    """Complete the user's account with an authorization code obtained elsewhere."""
    member = require_member(slug)
    if not json.code or not json.redirect_uri:
        raise ValidationError("send code and the redirect_uri it was issued for", field="code")
    account = connections.connect_with_code(
        db.session(),
        integration=integration_of(member, key),
        user_id=member.user.id,
        facility_id=member.facility.id,
        code=json.code,
        redirect_uri=json.redirect_uri,
        code_verifier=json.code_verifier,
        label=json.label,
        parameters=json.parameters or {},
        vault=extensions.vault(),
        http=extensions.outbound(),
    )
    db.session.commit()
    extensions.grants().answer_connected(account)  # runs waiting for it go on
    return account_out(account), 201


@bp.get("/f/<slug>/accounts")
@spec.validate(query=paging.Page, resp=reply(HTTP_200=list_of(AccountOut)), tags=TAGS)
def my_accounts(slug: str, query: paging.Page) -> Answer:
    """The user's own accounts in the facility, oldest first.

    Paginated: `limit`, `cursor` (see the `Next-Cursor` header).
    """
    member = require_member(slug)
    rows = db.session.scalars(
        select(Account).where(
            Account.facility_id == member.facility.id, Account.user_id == member.user.id
        )
    )
    page, after = paging.page_of(list(rows), query, key=lambda a: [a.id], kinds=(int,))
    return paging.with_next([account_out(a).model_dump() for a in page], after)


@bp.delete("/f/<slug>/accounts/<int:account_id>")
@spec.validate(query=Removal, resp=reply("HTTP_204", HTTP_502=REVOCATION_FAILED), tags=TAGS)
def disconnect_own(slug: str, account_id: int, query: Removal) -> Answer:
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
        db.session(), account, extensions.vault(), extensions.outbound(), remove_anyway=query.anyway
    )
    db.session.commit()
    return "", 204
