"""Integrations of a facility: create from the catalog or by hand, and edit.

The fields are checked in integration_fields (every wrong field is reported at once), the
OAuth client is saved by oauth_clients, and what admins and members see is shaped in
integration_views.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import extensions
from app.errors import Conflict, InvalidFields, ValidationError
from app.integrations import catalog, catalog_entry
from app.integrations.defaults import defaults_of, seal_defaults
from app.integrations.vault import Vault
from app.models import Facility, Integration
from app.services.credential_origins import (
    OriginChange,
    check_client_secret,
    check_saved_defaults,
    origin_change,
    sign_out_accounts,
)
from app.services.integration_fields import (
    COLUMNS,
    EMPTY_FIELDS,
    custom_key,
    entry_to_columns,
    noting,
    oauth_checks,
    optional_text,
    validated,
)
from app.services.oauth_clients import checked_client_id, set_client
from app.services.url_addresses import NEVER_REACHABLE_ONLY, check_address

# The URLs the server itself dials (the authorization URL is the browser's to open).
DIALLED_URLS = ("base_url", "token_url", "revoke_url")
# How long saving waits on the resolver for such a URL's name (as for webhook endpoints).
URL_LOOKUP_S = 3.0

# What an edit may change: the settings columns, the placements and parameters, the OAuth
# client, and the fields oauth_checks reads. Not the key: scripts call the integration by it.
CHANGEABLE = (
    *COLUMNS,
    "placements",
    "parameters",
    "client_id",
    "client_secret",
    "issuer",
    "allow_plain_codes",
    "accounts_per_user",
)


def _unique_key(session: Session, facility: Facility, key: str) -> None:
    if session.scalar(
        select(Integration.id).where(Integration.facility_id == facility.id, Integration.key == key)
    ):
        # Says what to do: the catalog's form fills in the entry's own key, taken by a
        # second GitHub (say) of the facility.
        raise Conflict(
            f"{facility.name} already has an integration with key '{key}': give this one "
            "another key (scripts call it by its key), or change the one it has from its "
            "Settings on the Management page",
            field="key",
        )


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
    """An integration pre-filled from a catalog entry. A missing or blank `key` is the
    entry's own (the Add form shows it as the default); no `client_secret` is a public
    client, which the token requests then send without one (client credentials, which
    have no person to sign in, are refused one)."""
    entry = catalog.load_catalog().get(catalog_key)
    if entry is None:
        raise ValidationError(f"no catalog entry '{catalog_key}'", field="catalog_key")
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ValidationError("overrides: must be a JSON object", field="overrides")
    fields = {**entry_to_columns(entry), **dict(overrides or {})}
    chosen_key = (key or "").strip() or entry.key
    fields.update(key=chosen_key, client_id=client_id, client_secret=client_secret)
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
    with noting(problems):
        key = custom_key(fields)
    if key:
        _unique_key(session, facility, key)
    columns: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    with noting(problems):
        # A malformed key was reported above: the other fields are checked under a valid one.
        columns = validated(key or "custom", fields)
    with noting(problems):
        checks = oauth_checks(fields)
    _check_addresses(problems, columns, DIALLED_URLS)
    if fields.get("auth_mode") in catalog_entry.OAUTH_MODES:
        with noting(problems):
            checked_client_id(optional_text(fields, "client_id"), None)
    if fields.get("auth_mode") == "oauth2_client_credentials" and not (
        optional_text(fields, "client_secret") or ""
    ).strip():
        problems.append(ValidationError(EMPTY_FIELDS["client_secret"], field="client_secret"))
    if problems:
        raise InvalidFields.of(problems)
    headers, query = columns.pop("default_headers"), columns.pop("default_query")
    integration = Integration(facility_id=facility.id, key=key, **columns, **checks)
    vault = _vault(vault)
    seal_defaults(integration, vault, headers=headers, query=query)
    session.add(integration)
    session.flush()
    if integration.auth_mode in catalog_entry.OAUTH_MODES:
        set_client(
            session,
            integration,
            vault,
            optional_text(fields, "client_id") or "",
            optional_text(fields, "client_secret"),
        )
    session.flush()
    return integration


def update_integration(
    session: Session,
    integration: Integration,
    fields: Mapping[str, Any],
    vault: Vault | None = None,
) -> OriginChange | None:
    """Change settings; default header and query values sent are replaced whole (the
    saved ones are kept when none are sent); see oauth_clients.set_client for the OAuth
    client. The key and the auth mode cannot change, and an edit that names nothing to
    change is a 400. An edit that sends secrets to a new origin must carry the client
    secret and the saved secret-like default values again, and signs every account out
    (credential_origins); the answer says so."""
    if "key" in fields:
        raise ValidationError(
            "key: an integration's key cannot be changed (scripts and accounts refer to it);"
            " add a new integration with the other key instead",
            field="key",
        )
    if fields.get("auth_mode", integration.auth_mode) != integration.auth_mode:
        # Accounts hold credentials of their mode: an API-key account under oauth2 (or a
        # master account under "none") was kept, shown as connected, and could not work.
        raise ValidationError(
            f"auth_mode: an integration's sign-in mode cannot be changed (its accounts sign "
            f"in with {integration.auth_mode}); add a new integration with the other mode "
            "instead",
            field="auth_mode",
        )
    if not any(name in fields for name in CHANGEABLE):
        raise ValidationError(f"give {', '.join(CHANGEABLE)} to change", field="body")
    vault = _vault(vault)
    current = {column: getattr(integration, column) for column in COLUMNS}
    saved_defaults = defaults_of(integration, vault)
    current["default_headers"], current["default_query"] = saved_defaults
    current["placements"] = integration.placements
    current["parameters"] = integration.parameters
    current.update({k: v for k, v in fields.items() if k in (*COLUMNS, "placements", "parameters")})
    client_change = "client_id" in fields or bool(fields.get("client_secret"))
    problems: list[ValidationError] = []
    columns: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    with noting(problems):
        columns = validated(integration.key, current)
    with noting(problems):
        checks = oauth_checks(fields)
    _check_addresses(problems, columns, [name for name in DIALLED_URLS if name in fields])
    if current.get("auth_mode") in catalog_entry.OAUTH_MODES and client_change:
        with noting(problems):
            checked_client_id(optional_text(fields, "client_id"), integration.current_client)
    change = origin_change(integration, columns) if columns else None
    if change is not None:
        with noting(problems):
            check_client_secret(session, integration, change, fields)
        check_saved_defaults(problems, saved_defaults, change, fields)
    if problems:
        raise InvalidFields.of(problems)
    headers, query = columns.pop("default_headers"), columns.pop("default_query")
    for column, value in {**columns, **checks}.items():
        setattr(integration, column, value)
    seal_defaults(integration, vault, headers=headers, query=query)
    if change is not None:
        change = sign_out_accounts(session, integration, change)
    if integration.auth_mode in catalog_entry.OAUTH_MODES and client_change:
        set_client(
            session,
            integration,
            vault,
            optional_text(fields, "client_id"),
            optional_text(fields, "client_secret") or None,
        )
    session.flush()
    return change


def _check_addresses(
    problems: list[ValidationError], columns: Mapping[str, Any], names: Sequence[str]
) -> None:
    # A link-local or cloud metadata address is refused on every call: say so when it is
    # typed, as webhook endpoints do. Private ones stay the operator's call, made per call.
    for name in names:
        url = columns.get(name)
        if isinstance(url, str) and url:
            with noting(problems):
                check_address(
                    url,
                    field=name,
                    whose="the provider's",
                    allow=NEVER_REACHABLE_ONLY,
                    lookup_s=URL_LOOKUP_S,
                )


def _vault(vault: Vault | None) -> Vault:
    # The one upward reach to app.extensions (pyproject's import-linter ignore names this
    # module): the other integration modules take the vault this resolves.
    return vault if vault is not None else extensions.vault()
