"""An integration's settings as fields: their columns, and turning form fields into
validated columns while gathering every wrong field at once.

Every field is validated by the catalog's validator (one set of rules for built-in and
custom integrations); the issuer, the plain-codes switch and accounts-per-user are
checked here, since the catalog does not hold them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from app.errors import InvalidFields, ValidationError
from app.integrations import catalog_entry
from app.integrations.catalog_calls import whoami_dict
from app.integrations.catalog_reader import CatalogError, EntryProblems
from app.integrations.catalog_validation import validate_entry
from app.integrations.transport import private_literal, secure_url

COLUMNS = (
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

# What an empty field of the integration forms says: the field, what to put in it, and what
# it is for. One owner for the create form (the key) and for both it and the Settings form
# (the rest, the OAuth ones where the auth mode needs them); the catalog's own "name: is
# required" or "token_url: required for ... sign-in" says neither.
EMPTY_FIELDS = {
    "key": "give the integration a key (letters and digits, starting with a letter): scripts"
    " name it in their calls",
    "name": f"give the integration a name (up to {catalog_entry.MAX_NAME_LENGTH} characters):"
    " it is what people see when they connect an account to it",
    "base_url": "give the integration a base URL (such as https://api.example.com/v1): the"
    " paths scripts call are sent under it",
    "authorization_url": "give the provider's authorization URL (such as"
    " https://example.com/oauth/authorize): people are sent there to sign in and allow access",
    "token_url": "give the provider's token URL (such as https://example.com/oauth/token): the"
    " server gets and refreshes access tokens there",
    "client_id": "give the client id the provider issued for this app (from its developer"
    " settings): the server names it in every sign-in and token request",
    # Asked for under client credentials only: a public client (no secret) is an
    # authorization-code client that signs in with PKCE; a machine one has no person either.
    "client_secret": "give the client secret the provider issued with the client id: client"
    " credentials have no person to sign in, the id and the secret are the whole sign-in",
}


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _field_problem(problem: CatalogError, raw: Mapping[str, Any]) -> ValidationError:
    """A validator's problem as a form hears it: an empty field it asks for by name, what
    to put there and why (EMPTY_FIELDS); any other problem named by its path."""
    if problem.path in EMPTY_FIELDS and _blank(raw.get(problem.path)):
        return ValidationError(EMPTY_FIELDS[problem.path], field=problem.path)
    return ValidationError(f"{problem.path}: {problem.problem}", field=problem.field or "key")


def entry_to_columns(entry: catalog_entry.CatalogEntry) -> dict[str, Any]:
    """An integration's column values from a catalog entry."""
    values = {column: getattr(entry, column) for column in COLUMNS}
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
    for column in (*COLUMNS, "placements", "parameters"):
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


def _stand_in(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(("https", "private-network.example", parts.path, parts.query, ""))


def validated(key: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The columns for `values` under `key`, checked by the catalog's validator; raises
    InvalidFields naming every wrong field."""
    raw = _raw_from_columns(values)
    # Loopback/LAN services may be plain http on an IP address: whether the server may
    # reach them is the operator's call (PRIVATE_NETWORK_ALLOW, checked on every connect).
    # The catalog validator insists on https and public host names, so such URLs are
    # checked against a stand-in host.
    private = {
        name
        for name, value in raw.items()
        if name.endswith("_url") and isinstance(value, str) and private_literal(value)
    }
    for name in private:
        try:
            raw[name] = _stand_in(raw[name])
        except ValueError:
            raise ValidationError(f"{name}: is not a valid URL", field=name) from None
    if isinstance(raw.get("allowed_hosts"), list):
        raw["allowed_hosts"] = [
            _stand_in(h) if isinstance(h, str) and private_literal(h) else h
            for h in raw["allowed_hosts"]
        ]
    try:
        entry = validate_entry(key, raw)
    except EntryProblems as exc:
        # The validator names each field as data; the messages drop the catalog's entry
        # prefix, which means nothing to someone filling in a form.
        raise InvalidFields.of([_field_problem(p, raw) for p in exc.problems]) from None
    columns = entry_to_columns(entry)
    for column in private:
        if column in catalog_entry.fields_for_mode(entry.auth_mode):
            columns[column] = values[column]
    if columns.get("allowed_hosts"):
        columns["allowed_hosts"] = list(values.get("allowed_hosts") or [])
    return columns


@contextmanager
def noting(problems: list[ValidationError]) -> Iterator[None]:
    """Note a ValidationError raised inside rather than raise it, so a form hears of every
    wrong field at once (see InvalidFields)."""
    try:
        yield
    except ValidationError as exc:
        problems.append(exc)


def oauth_checks(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The issuer (RFC 9207), the plain-codes switch and how many accounts each person may
    connect, where the fields set them."""
    checks: dict[str, Any] = {}
    problems: list[ValidationError] = []
    if "issuer" in fields:
        with noting(problems):
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
    issuer = (optional_text(fields, "issuer") or "").strip() or None
    if issuer is not None:
        parts = urlsplit(issuer)
        if not secure_url(issuer) or not parts.hostname or parts.query or parts.fragment:
            raise ValidationError(
                "the issuer must be the provider's https URL, without query or fragment",
                field="issuer",
            )
    return issuer


def optional_text(fields: Mapping[str, Any], name: str) -> str | None:
    """The field `name` if it is text or absent; anything else is a ValidationError."""
    value = fields.get(name)
    if value is None or isinstance(value, str):
        return value
    raise ValidationError(f"{name}: must be text", field=name)


def custom_key(fields: Mapping[str, Any]) -> str:
    """The key typed for a new integration, lowercased: letters and digits, starting with a
    letter, within the catalog's length limit."""
    key = (optional_text(fields, "key") or "").strip()
    if not key:
        raise ValidationError(EMPTY_FIELDS["key"], field="key")
    if not key.isalnum() or not key.isascii() or not key[0].isalpha():
        raise ValidationError(
            "the key must be letters and digits, starting with a letter", field="key"
        )
    if len(key) > catalog_entry.MAX_KEY_LENGTH:
        raise ValidationError(
            f"the key must be at most {catalog_entry.MAX_KEY_LENGTH} characters", field="key"
        )
    return key.lower()
