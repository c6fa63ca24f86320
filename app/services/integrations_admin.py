"""Integrations of a facility: create from the catalog or by hand, edit, view, test.

Every field is validated by the catalog's validator (one set of rules for built-in and
custom integrations). Client secrets are write-only: views say only whether one is set.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import extensions
from app.errors import Conflict, InvalidFields, ValidationError
from app.integrations import catalog, catalog_entry
from app.integrations.catalog_calls import whoami_dict
from app.integrations.catalog_reader import EntryProblems
from app.integrations.catalog_validation import validate_entry
from app.integrations.defaults import defaults_of, masked, seal_defaults
from app.integrations.transport import canonical_host, normalised
from app.integrations.vault import Vault
from app.models import Account, Facility, Integration, OAuthClient

_COLUMNS = (
    "name",
    "auth_mode",
    "base_url",
    "authorization_url",
    "token_url",
    "token_request_method",
    "token_auth_method",
    "revoke_url",
    "scopes",
    "scope_separator",
    "pkce",
    "authorization_params",
    "credential_fields",
    "default_headers",
    "default_query",
    "allowed_hosts",
    "refresh_on_403",
    "verify",
    "whoami",
)


def redirect_uri(public_url: str) -> str:
    """The exact OAuth redirect URI to register at providers."""
    return f"{public_url.rstrip('/')}/oauth/callback"


def _entry_to_columns(entry: catalog_entry.CatalogEntry) -> dict[str, Any]:
    values = {column: getattr(entry, column) for column in _COLUMNS}
    values["scopes"] = list(entry.scopes)
    values["credential_fields"] = list(entry.credential_fields)
    values["allowed_hosts"] = list(entry.allowed_hosts)
    values["authorization_params"] = dict(entry.authorization_params)
    values["default_headers"] = dict(entry.default_headers)
    values["default_query"] = dict(entry.default_query)
    values["placements"] = [catalog_entry.placement_dict(p) for p in entry.placements]
    values["verify"] = catalog_entry.verification_dict(entry.verify)
    values["whoami"] = whoami_dict(entry.whoami)
    values["parameters"] = [
        {"name": p.name, "label": p.label, "pattern": p.pattern} for p in entry.parameters
    ]
    return values


def _raw_from_columns(values: Mapping[str, Any]) -> dict[str, Any]:
    """The catalog validator's input shape from integration columns: only the fields the
    auth mode uses (the catalog says which), empty values left out."""
    mode = values.get("auth_mode")
    used = catalog_entry.fields_for_mode(mode if isinstance(mode, str) else "")
    raw: dict[str, Any] = {}
    for column in (*_COLUMNS, "placements", "parameters"):
        value = values.get(column)
        if column in ("name", "auth_mode", "base_url") or (
            column in used and value is not None and value != [] and value != {}
        ):
            raw[column] = value
    if isinstance(raw.get("placements"), list):
        raw["placements"] = [
            {k: v for k, v in item.items() if v is not None} if isinstance(item, Mapping) else item
            for item in raw["placements"]
        ]
    raw.setdefault("docs_url", "https://example.com/docs")
    raw.setdefault("setup_guide", "Custom integration.")
    return raw


def _private_literal(url: str) -> bool:
    """True for a URL on localhost or a non-public IP address."""
    try:
        host = canonical_host(urlsplit(url).hostname or "") if "://" in url else ""
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return not normalised(host).is_global
    except ValueError:
        return False


def _stand_in(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(("https", "private-network.example", parts.path, parts.query, ""))


def _validated(key: str, values: Mapping[str, Any]) -> dict[str, Any]:
    raw = _raw_from_columns(values)
    # Loopback/LAN services may be plain http on an IP address: whether the server may
    # reach them is the operator's call (PRIVATE_NETWORK_ALLOW, checked on every connect).
    # The catalog validator insists on https and public host names, so such URLs are
    # checked against a stand-in host.
    private = {
        name
        for name, value in raw.items()
        if name.endswith("_url") and isinstance(value, str) and _private_literal(value)
    }
    for name in private:
        try:
            raw[name] = _stand_in(raw[name])
        except ValueError:
            raise ValidationError(f"{name}: is not a valid URL", field=name) from None
    if isinstance(raw.get("allowed_hosts"), list):
        raw["allowed_hosts"] = [
            _stand_in(h) if isinstance(h, str) and _private_literal(h) else h
            for h in raw["allowed_hosts"]
        ]
    try:
        entry = validate_entry(key, raw)
    except EntryProblems as exc:
        # The validator names each field as data; the messages drop the catalog's entry
        # prefix, which means nothing to someone filling in a form.
        raise InvalidFields.of(
            [
                ValidationError(f"{p.path}: {p.problem}", field=p.field or "key")
                for p in exc.problems
            ]
        ) from None
    columns = _entry_to_columns(entry)
    for column in private:
        if column in catalog_entry.fields_for_mode(entry.auth_mode):
            columns[column] = values[column]
    if columns.get("allowed_hosts"):
        columns["allowed_hosts"] = list(values.get("allowed_hosts") or [])
    return columns


@contextmanager
def _noting(problems: list[ValidationError]) -> Iterator[None]:
    """Note a ValidationError raised inside rather than raise it, so a form hears of every
    wrong field at once (see InvalidFields)."""
    try:
        yield
    except ValidationError as exc:
        problems.append(exc)


def _oauth_checks(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The issuer (RFC 9207), the plain-codes switch and how many accounts each person may
    connect, where the fields set them."""
    checks: dict[str, Any] = {}
    problems: list[ValidationError] = []
    if "issuer" in fields:
        with _noting(problems):
            checks["issuer"] = _issuer(fields)
    if "allow_plain_codes" in fields:
        checks["allow_plain_codes"] = bool(fields.get("allow_plain_codes"))
    if fields.get("accounts_per_user") is not None:
        if fields["accounts_per_user"] not in catalog_entry.ACCOUNTS_PER_USER:
            problems.append(
                ValidationError(
                    "accounts_per_user: must be one of "
                    + ", ".join(catalog_entry.ACCOUNTS_PER_USER),
                    field="accounts_per_user",
                )
            )
        checks["accounts_per_user"] = fields["accounts_per_user"]
    if problems:
        raise InvalidFields.of(problems)
    return checks


def _issuer(fields: Mapping[str, Any]) -> str | None:
    issuer = (_optional_text(fields, "issuer") or "").strip() or None
    if issuer is not None:
        parts = urlsplit(issuer)
        secure = parts.scheme == "https" or (parts.scheme == "http" and _private_literal(issuer))
        if not secure or not parts.hostname or parts.query or parts.fragment:
            raise ValidationError(
                "the issuer must be the provider's https URL, without query or fragment",
                field="issuer",
            )
    return issuer


def _optional_text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None or isinstance(value, str):
        return value
    raise ValidationError(f"{name}: must be text", field=name)


def _unique_key(session: Session, facility: Facility, key: str) -> None:
    if session.scalar(
        select(Integration.id).where(Integration.facility_id == facility.id, Integration.key == key)
    ):
        raise Conflict(f"{facility.name} already has an integration with key '{key}'", field="key")


def _set_client(
    session: Session,
    integration: Integration,
    vault: Vault | None,
    client_id: str | None,
    client_secret: str | None,
) -> None:
    """Save the OAuth client: a new secret for the same client id reaches every account that
    client issued; a new client id gets its own row (older accounts keep theirs)."""
    if client_id is None and client_secret is None:
        return
    current = integration.current_client
    new_id = _client_id(client_id, current)
    same_id = list(
        session.scalars(
            select(OAuthClient)
            .where(OAuthClient.integration_id == integration.id, OAuthClient.client_id == new_id)
            .order_by(OAuthClient.id.desc())
        )
    )
    secret_enc: str | None = None
    if client_secret:
        secret_enc = _vault(vault).encrypt(client_secret)
        # One client id has one secret at the provider: a rotated secret must reach the
        # accounts issued under it, or their refreshes fail with invalid_client.
        for row in same_id:
            row.client_secret_enc = secret_enc
            row.rejected_with = None
            row.rejected_at = None
    elif not same_id and current is not None:
        secret_enc = current.client_secret_enc  # a new id with a blank secret keeps the saved one
    if same_id:
        client = same_id[0]
    else:
        client = OAuthClient(
            integration_id=integration.id, client_id=new_id, client_secret_enc=secret_enc
        )
        session.add(client)
    session.flush()
    integration.current_client_id = client.id
    integration.current_client = client


def _client_id(client_id: str | None, current: OAuthClient | None) -> str:
    """The client id a save keeps: the one typed, else the current one; one is required."""
    new_id = (client_id or "").strip() or (current.client_id if current else "")
    if not new_id:
        raise ValidationError("enter the client id from the provider", field="client_id")
    if len(new_id) > catalog_entry.MAX_CLIENT_ID_LENGTH:
        raise ValidationError(
            f"the client id must be at most {catalog_entry.MAX_CLIENT_ID_LENGTH} characters",
            field="client_id",
        )
    return new_id


def client_problem(session: Session, integration: Integration) -> str | None:
    """In words: the provider refused an OAuth client that accounts still use, if it did."""
    rows = session.execute(
        select(OAuthClient, func.count(Account.id))
        .join(Account, Account.oauth_client_id == OAuthClient.id, isouter=True)
        .where(OAuthClient.integration_id == integration.id, OAuthClient.rejected_with.is_not(None))
        .group_by(OAuthClient.id)
    ).all()
    current = integration.current_client_id
    for client, accounts in rows:
        if client.id != current and not accounts:
            continue  # an old client nobody uses any more
        when = client.rejected_at.strftime("%Y-%m-%d %H:%M UTC") if client.rejected_at else ""
        return (
            f"The provider refused the OAuth client {client.client_id} ({client.rejected_with}) "
            f"on a token refresh {when}: the client id or secret is wrong or was changed at "
            f"the provider. {accounts} connected account(s) cannot refresh until an admin "
            "saves the current client secret here."
        )
    return None


def create_from_catalog(
    session: Session,
    *,
    facility: Facility,
    catalog_key: str,
    key: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    vault: Vault | None = None,
) -> Integration:
    """An integration pre-filled from a catalog entry."""
    entry = catalog.load_catalog().get(catalog_key)
    if entry is None:
        raise ValidationError(f"no catalog entry '{catalog_key}'", field="catalog_key")
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ValidationError("overrides: must be a JSON object", field="overrides")
    fields = {**_entry_to_columns(entry), **dict(overrides or {})}
    fields.update(key=key or entry.key, client_id=client_id, client_secret=client_secret)
    integration = create_custom(session, facility=facility, fields=fields, vault=vault)
    integration.catalog_key = entry.key
    return integration


def create_custom(
    session: Session, *, facility: Facility, fields: Mapping[str, Any], vault: Vault | None = None
) -> Integration:
    """An integration with every field given by hand (validated; every wrong field is
    reported at once, but a key another integration has is a conflict of its own)."""
    problems: list[ValidationError] = []
    key = ""
    with _noting(problems):
        key = _custom_key(fields)
    if key:
        _unique_key(session, facility, key)
    columns: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    with _noting(problems):
        # A malformed key was reported above: the other fields are checked under a valid one.
        columns = _validated(key or "custom", fields)
    with _noting(problems):
        checks = _oauth_checks(fields)
    if fields.get("auth_mode") in catalog_entry.OAUTH_MODES:
        with _noting(problems):
            _client_id(_optional_text(fields, "client_id"), None)
    if problems:
        raise InvalidFields.of(problems)
    headers, query = columns.pop("default_headers"), columns.pop("default_query")
    integration = Integration(facility_id=facility.id, key=key, **columns, **checks)
    seal_defaults(integration, _vault(vault), headers=headers, query=query)
    session.add(integration)
    session.flush()
    if integration.auth_mode in catalog_entry.OAUTH_MODES:
        _set_client(
            session,
            integration,
            vault,
            _optional_text(fields, "client_id") or "",
            _optional_text(fields, "client_secret"),
        )
    session.flush()
    return integration


def _custom_key(fields: Mapping[str, Any]) -> str:
    key = (_optional_text(fields, "key") or "").strip()
    if not key or not key.isalnum() or not key.isascii() or not key[0].isalpha():
        raise ValidationError(
            "the key must be letters and digits, starting with a letter", field="key"
        )
    if len(key) > catalog_entry.MAX_KEY_LENGTH:
        raise ValidationError(
            f"the key must be at most {catalog_entry.MAX_KEY_LENGTH} characters", field="key"
        )
    return key.lower()


def update_integration(
    session: Session,
    integration: Integration,
    fields: Mapping[str, Any],
    vault: Vault | None = None,
) -> Integration:
    """Change settings; default header and query values sent are replaced whole (the
    saved ones are kept when none are sent); see _set_client for the OAuth client."""
    vault = _vault(vault)
    current = {column: getattr(integration, column) for column in _COLUMNS}
    current["default_headers"], current["default_query"] = defaults_of(integration, vault)
    current["placements"] = integration.placements
    current["parameters"] = integration.parameters
    current.update(
        {k: v for k, v in fields.items() if k in (*_COLUMNS, "placements", "parameters")}
    )
    client_change = "client_id" in fields or bool(fields.get("client_secret"))
    problems: list[ValidationError] = []
    columns: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    with _noting(problems):
        columns = _validated(integration.key, current)
    with _noting(problems):
        checks = _oauth_checks(fields)
    if current.get("auth_mode") in catalog_entry.OAUTH_MODES and client_change:
        with _noting(problems):
            _client_id(_optional_text(fields, "client_id"), integration.current_client)
    if problems:
        raise InvalidFields.of(problems)
    headers, query = columns.pop("default_headers"), columns.pop("default_query")
    for column, value in {**columns, **checks}.items():
        setattr(integration, column, value)
    seal_defaults(integration, vault, headers=headers, query=query)
    if integration.auth_mode in catalog_entry.OAUTH_MODES and client_change:
        _set_client(
            session,
            integration,
            vault,
            _optional_text(fields, "client_id"),
            _optional_text(fields, "client_secret") or None,
        )
    session.flush()
    return integration


def integration_public_view(integration: Integration) -> dict[str, Any]:
    """Everything about an integration an admin may see; never the client secret, and
    default header and query values only masked (they are write-only)."""
    client = integration.current_client
    entry = catalog.load_catalog().get(integration.catalog_key or "")
    view = {column: getattr(integration, column) for column in _COLUMNS}
    view.update(
        default_headers=masked(integration.default_headers),
        default_query=masked(integration.default_query),
        key=integration.key,
        catalog_key=integration.catalog_key,
        placements=integration.placements,
        parameters=integration.parameters,
        issuer=integration.issuer,
        allow_plain_codes=integration.allow_plain_codes,
        accounts_per_user=integration.accounts_per_user,
        client_id=client.client_id if client else None,
        has_client_secret=bool(client and client.client_secret_enc),
        setup_guide=entry.setup_guide if entry else None,
        docs_url=entry.docs_url if entry else None,
    )
    return view


def integration_member_view(integration: Integration) -> dict[str, Any]:
    """What a member needs to connect their own account and read their scripts' errors."""
    return {
        "key": integration.key,
        "name": integration.name,
        "auth_mode": integration.auth_mode,
        "catalog_key": integration.catalog_key,
        "credential_fields": list(integration.credential_fields or []),
        "accounts_per_user": integration.accounts_per_user,
        "parameters": [
            {"name": p.get("name"), "label": p.get("label")} for p in integration.parameters or []
        ],
    }


def _vault(vault: Vault | None) -> Vault:
    return vault if vault is not None else extensions.vault()
