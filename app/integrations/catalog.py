"""Built-in integration catalog and the rules of integration fields: the auth modes, which
fields each mode uses, the default credential placements, the parameter pattern and the
length limits (one owner, imported by the app), the catalog.json data file, its loader and
its validator.

Standard library only. Each entry pre-fills an integration (DESIGN.md §5); quirks that data
can say stay in catalog.json, and every entry passes validate_entry before anyone can use it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast, get_args

from app.integrations.catalog_calls import MAX_IDENTITY_LENGTH as MAX_IDENTITY_LENGTH
from app.integrations.catalog_calls import (
    Example,
    WhoAmI,
    check_plain_path,
    read_example,
    read_whoami,
)
from app.integrations.catalog_reader import (
    HOST_RE,
    EntryReader,
    check_template,
    check_url,
    check_values,
)
from app.integrations.catalog_reader import CatalogError as CatalogError
from app.integrations.catalog_reader import template_fields as template_fields

AuthMode = Literal[
    "oauth2", "oauth2_client_credentials", "api_key", "api_key_secret", "basic", "none"
]
Location = Literal["header", "query", "basic"]
TokenRequestMethod = Literal["POST", "GET"]
TokenAuthMethod = Literal["client_secret_basic", "client_secret_post"]

AUTH_MODES: frozenset[str] = frozenset(get_args(AuthMode))
OAUTH_MODES: frozenset[str] = frozenset({"oauth2", "oauth2_client_credentials"})
# Modes whose accounts are typed into a form (a key, a key + secret, a username + password).
CREDENTIAL_MODES: frozenset[str] = frozenset({"api_key", "api_key_secret", "basic"})
# Modes where each member may connect an account of their own (the others connect once).
PERSONAL_ACCOUNT_MODES: frozenset[str] = CREDENTIAL_MODES | {"oauth2"}
# How many accounts of one integration each person may connect (an admin's setting).
ACCOUNTS_PER_USER: tuple[str, ...] = ("several", "one")
CREDENTIAL_FIELDS: tuple[str, ...] = ("username", "password", "api_key", "api_secret")
DEFAULT_CREDENTIAL_FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "api_key": ("api_key",),
        "api_key_secret": ("api_key", "api_secret"),
        "basic": ("username", "password"),
    }
)
DEFAULT_PARAMETER_PATTERN = r"^[A-Za-z0-9.-]+$"
CATALOG_PATH = Path(__file__).with_name("catalog.json")
# Length limits: the database columns, the forms and the validators all import these.
MAX_KEY_LENGTH = 64
MAX_NAME_LENGTH = 200
MAX_LABEL_LENGTH = 64
MAX_URL_LENGTH = 500
MAX_CLIENT_ID_LENGTH = 255

_KEY_RE = re.compile(r"[a-z][a-z0-9]*")
_PARAMETER_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
_QUERY_NAME_RE = re.compile(r"[A-Za-z0-9._~-]+")
# Values a parameter pattern must refuse: each could move a request to another host or path.
_UNSAFE_PARAMETER_PROBES = ("a/b", "a@b", "a:b", "a?b", "a#b", "a\\b", "a b", "a%2fb", "a{b}")
_RESERVED_AUTHORIZATION_PARAMS = {"client_id", "redirect_uri", "response_type", "state", "scope"}
OAUTH_ONLY_FIELDS: frozenset[str] = frozenset(
    {"token_url", "token_request_method", "token_auth_method", "revoke_url"}
    | {"scopes", "scope_separator", "refresh_on_403"}
)
AUTHORIZATION_CODE_ONLY_FIELDS: frozenset[str] = frozenset(
    {"authorization_url", "pkce", "authorization_params"}
)


@dataclass(frozen=True)
class Placement:
    """Where a credential goes: a header or query parameter value, or HTTP Basic auth."""

    location: Location
    name: str | None
    template: str
    password_template: str | None = None


@dataclass(frozen=True)
class Parameter:
    """A value asked for when an account connects; it must re.fullmatch its pattern."""

    name: str
    label: str
    pattern: str = DEFAULT_PARAMETER_PATTERN


VerifyMethod = Literal["GET", "HEAD"]


@dataclass(frozen=True)
class Verification:
    """A request that tells whether typed credentials work: its answer must have this status."""

    method: VerifyMethod
    path: str
    expected_status: int = 200


def _empty_mapping() -> Mapping[str, str]:
    return MappingProxyType({})


BEARER_TOKEN = Placement(location="header", name="Authorization", template="Bearer {token}")
BASIC_PASSWORD = Placement(
    location="basic", name=None, template="{username}", password_template="{password}"
)
_PLACEMENT_FIELDS = frozenset(f.name for f in fields(Placement))
_PARAMETER_FIELDS = frozenset(f.name for f in fields(Parameter))
_VERIFICATION_FIELDS = frozenset(f.name for f in fields(Verification))


@dataclass(frozen=True)
class CatalogEntry:
    """One validated provider: endpoints, OAuth settings and where credentials go."""

    key: str
    name: str
    auth_mode: AuthMode
    base_url: str
    authorization_url: str | None = None
    token_url: str | None = None
    token_request_method: TokenRequestMethod = "POST"  # an HTTP verb
    token_auth_method: TokenAuthMethod = "client_secret_post"  # a method name
    revoke_url: str | None = None
    scopes: tuple[str, ...] = ()
    scope_separator: str = " "
    pkce: bool = True
    authorization_params: Mapping[str, str] = field(default_factory=_empty_mapping)
    placements: tuple[Placement, ...] = ()
    credential_fields: tuple[str, ...] = ()
    parameters: tuple[Parameter, ...] = ()
    default_headers: Mapping[str, str] = field(default_factory=_empty_mapping)
    default_query: Mapping[str, str] = field(default_factory=_empty_mapping)
    allowed_hosts: tuple[str, ...] = ()
    refresh_on_403: bool = False
    verify: Verification | None = None
    whoami: WhoAmI | None = None
    example: Example | None = None
    docs_url: str = ""
    setup_guide: str = ""


_ENTRY_FIELDS = frozenset(f.name for f in fields(CatalogEntry)) - {"key"}


def fields_for_mode(auth_mode: str) -> frozenset[str]:
    """The entry fields an auth mode uses; every other field must be absent from its entry."""
    unused: set[str] = set()
    if auth_mode not in OAUTH_MODES:
        unused |= OAUTH_ONLY_FIELDS
    if auth_mode != "oauth2":
        unused |= AUTHORIZATION_CODE_ONLY_FIELDS
    if auth_mode not in CREDENTIAL_MODES:
        unused |= {"credential_fields", "verify"}
    if auth_mode == "none":
        unused |= {"placements", "whoami"}  # no account: nobody to name
    return _ENTRY_FIELDS - unused


def default_placements(
    auth_mode: str, credential_fields: tuple[str, ...] = ()
) -> tuple[Placement, ...]:
    """Where the credential goes when an entry does not say: a bearer token, or Basic auth."""
    if auth_mode in OAUTH_MODES:
        return (BEARER_TOKEN,)
    if auth_mode == "basic" and set(credential_fields) == {"username", "password"}:
        return (BASIC_PASSWORD,)
    return ()


def verification_dict(verification: Verification | None) -> dict[str, Any] | None:
    """A verification request in the JSON shape of catalog.json and the integration's column."""
    if verification is None:
        return None
    return {
        "method": verification.method,
        "path": verification.path,
        "expected_status": verification.expected_status,
    }


def placement_dict(placement: Placement) -> dict[str, Any]:
    """A placement in the JSON shape of catalog.json and the integration's column."""
    return {
        "location": placement.location,
        "name": placement.name,
        "template": placement.template,
        "password_template": placement.password_template,
    }


def load_catalog(path: Path | None = None) -> dict[str, CatalogEntry]:
    """Load and validate a catalog file (default: the shipped catalog.json, read once)."""
    if path is None:
        return dict(_load_shipped())
    return _load(path)


@functools.cache
def _load_shipped() -> Mapping[str, CatalogEntry]:
    return MappingProxyType(_load(CATALOG_PATH))


def _load(path: Path) -> dict[str, CatalogEntry]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicates)
    except (OSError, ValueError) as exc:
        raise CatalogError(f"{path}: cannot read catalog: {exc}") from exc
    if not isinstance(raw, dict):
        raise CatalogError(f"{path}: the catalog must be a JSON object keyed by entry key")
    entries: dict[str, CatalogEntry] = {}
    for key, value in raw.items():
        if not isinstance(value, dict):
            raise CatalogError("must be a JSON object", entry=key)
        entries[key] = validate_entry(key, value)
    return entries


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError(f"duplicate key {name!r}")
        result[name] = value
    return result


def validate_entry(key: str, raw: Mapping[str, Any]) -> CatalogEntry:
    """Validate one raw catalog entry and return it as a CatalogEntry, or raise CatalogError."""
    r = EntryReader(key, raw)
    if not _KEY_RE.fullmatch(key):
        raise r.error("key", "must be lowercase letters and digits, starting with a letter")
    _check_length(r, "key", key, MAX_KEY_LENGTH)
    r.reject_unknown(_ENTRY_FIELDS)
    name = r.text("name")
    _check_length(r, "name", name, MAX_NAME_LENGTH)
    auth_mode = cast(AuthMode, r.choice("auth_mode", tuple(sorted(AUTH_MODES))))
    oauth = auth_mode in OAUTH_MODES
    # Empty values are allowed where a field is unused: they say nothing.
    misplaced = sorted(
        k for k in raw.keys() - fields_for_mode(auth_mode) if raw[k] not in ([], {}, None)
    )
    if misplaced:
        unused_by = (
            "OAuth auth modes"
            if misplaced[0] in OAUTH_ONLY_FIELDS
            else "auth_mode oauth2"
            if misplaced[0] in AUTHORIZATION_CODE_ONLY_FIELDS
            else "auth modes with typed credentials"
        )
        raise r.error(misplaced[0], f"only used by {unused_by}, not {auth_mode}")

    parameters = _parameters(r)
    params = {p.name for p in parameters}
    used: set[str] = set()

    base_url = r.text("base_url")
    _check_length(r, "base_url", base_url, MAX_URL_LENGTH)
    used |= check_url(r, "base_url", base_url, params, allow_query=False)
    urls: dict[str, str | None] = {}
    for url_field in ("authorization_url", "token_url", "revoke_url"):
        url = urls[url_field] = None if raw.get(url_field) is None else r.text(url_field)
        if url is not None:
            _check_length(r, url_field, url, MAX_URL_LENGTH)
            used |= check_url(r, url_field, url, params, allow_query=True)
    if oauth and urls["token_url"] is None:
        raise r.error("token_url", f"required for auth_mode {auth_mode}")
    if auth_mode == "oauth2" and urls["authorization_url"] is None:
        raise r.error("authorization_url", "required for auth_mode oauth2")

    scope_separator = r.raw.get("scope_separator", " ")
    if scope_separator not in (" ", ","):
        raise r.error("scope_separator", "must be a space or a comma")
    scopes = r.text_list("scopes")
    for scope in scopes:
        if not scope or any(c.isspace() for c in scope) or scope_separator in scope:
            raise r.error("scopes", f"scope {scope!r} is empty or holds whitespace or separator")

    authorization_params = r.text_map("authorization_params")
    for param_name in authorization_params:
        if param_name in _RESERVED_AUTHORIZATION_PARAMS or param_name.startswith("code_"):
            raise r.error("authorization_params", f"{param_name!r} is set by the OAuth flow")
    used |= check_values(r, "authorization_params", authorization_params, params)

    credential_fields = r.text_list("credential_fields") or DEFAULT_CREDENTIAL_FIELDS.get(
        auth_mode, ()
    )
    for credential in credential_fields:
        if credential not in CREDENTIAL_FIELDS:
            raise r.error("credential_fields", f"unknown credential field {credential!r}")
    if len(set(credential_fields)) != len(credential_fields):
        raise r.error("credential_fields", "lists a field twice")

    placements = _placements(r, auth_mode, credential_fields)
    credential_variables = {"token"} if oauth else set(credential_fields)
    templated: set[str] = set()
    for index, placement in enumerate(placements):
        allowed = credential_variables | params
        templated |= check_template(r, f"placements[{index}].template", placement.template, allowed)
        if placement.password_template is not None:
            where = f"placements[{index}].password_template"
            templated |= check_template(r, where, placement.password_template, allowed)
    used |= templated
    _check_credentials(r, auth_mode, credential_fields, placements, templated)

    default_headers = r.text_map("default_headers", _HEADER_NAME_RE)
    used |= check_values(r, "default_headers", default_headers, params)
    default_query = r.text_map("default_query", _QUERY_NAME_RE)
    used |= check_values(r, "default_query", default_query, params)

    for parameter in parameters:
        if parameter.name not in used:
            raise r.error("parameters", f"parameter {parameter.name!r} is never used")

    verify = _verification(r)
    allowed_hosts = r.text_list("allowed_hosts")
    for host in allowed_hosts:
        # An origin (optionally with a path) names scheme, host and port exactly; a bare
        # host name means the base URL's scheme and default port.
        if "://" in host:
            check_url(r, "allowed_hosts", host, set(), allow_query=False)
        elif not HOST_RE.fullmatch(host):
            raise r.error(
                "allowed_hosts", f"{host!r} is not a lowercase host name or an https origin"
            )

    docs_url = r.text("docs_url")
    # A documentation link may point at an anchor; endpoints may not.
    check_url(r, "docs_url", docs_url.partition("#")[0], set(), allow_query=True)
    setup_guide = r.text("setup_guide")

    return CatalogEntry(
        key=key,
        name=name,
        auth_mode=auth_mode,
        base_url=base_url,
        authorization_url=urls["authorization_url"],
        token_url=urls["token_url"],
        token_request_method=cast(
            TokenRequestMethod,
            r.choice("token_request_method", get_args(TokenRequestMethod), "POST"),
        ),
        token_auth_method=cast(
            TokenAuthMethod,
            r.choice("token_auth_method", get_args(TokenAuthMethod), "client_secret_post"),
        ),
        revoke_url=urls["revoke_url"],
        scopes=scopes,
        scope_separator=scope_separator,
        pkce=r.flag("pkce", True),
        authorization_params=authorization_params,
        placements=placements,
        credential_fields=credential_fields,
        parameters=parameters,
        default_headers=default_headers,
        default_query=default_query,
        allowed_hosts=allowed_hosts,
        refresh_on_403=r.flag("refresh_on_403", False),
        verify=verify,
        whoami=read_whoami(r),
        example=read_example(r),
        docs_url=docs_url,
        setup_guide=setup_guide,
    )


def _check_length(r: EntryReader, name: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise r.error(name, f"must be at most {limit} characters")


def _parameters(r: EntryReader) -> tuple[Parameter, ...]:
    parameters: list[Parameter] = []
    for index, raw in enumerate(r.items("parameters")):
        p = r.nested(f"parameters[{index}]", raw)
        p.reject_unknown(_PARAMETER_FIELDS)
        name = p.text("name")
        if not _PARAMETER_NAME_RE.fullmatch(name) or name == "token" or name in CREDENTIAL_FIELDS:
            raise p.error("name", f"{name!r} must be an identifier and not a credential name")
        if any(existing.name == name for existing in parameters):
            raise p.error("name", f"parameter {name!r} is declared twice")
        pattern = p.text("pattern", DEFAULT_PARAMETER_PATTERN)
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise p.error("pattern", f"not a valid regular expression: {exc}") from exc
        for probe in _UNSAFE_PARAMETER_PROBES:
            if compiled.fullmatch(probe):
                raise p.error("pattern", f"accepts the unsafe value {probe!r}")
        parameters.append(Parameter(name=name, label=p.text("label"), pattern=pattern))
    return tuple(parameters)


def _verification(r: EntryReader) -> Verification | None:
    if r.raw.get("verify") is None:
        return None
    v = r.nested("verify", r.raw["verify"])
    v.reject_unknown(_VERIFICATION_FIELDS)
    method = cast(VerifyMethod, v.choice("method", get_args(VerifyMethod), "GET"))
    path = v.text("path")
    check_plain_path(v, path)
    status = v.raw.get("expected_status", 200)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise v.error("expected_status", "must be an HTTP status between 100 and 599")
    return Verification(method=method, path=path, expected_status=status)


def _placements(
    r: EntryReader, auth_mode: str, credential_fields: tuple[str, ...]
) -> tuple[Placement, ...]:
    if "placements" not in r.raw:
        defaults = default_placements(auth_mode, credential_fields)
        if defaults:
            return defaults
    placements: list[Placement] = []
    for index, raw in enumerate(r.items("placements")):
        p = r.nested(f"placements[{index}]", raw)
        p.reject_unknown(_PLACEMENT_FIELDS)
        location = cast(Location, p.choice("location", get_args(Location)))
        template = p.text("template")
        if location == "basic":
            if p.raw.get("name") is not None:
                raise p.error("name", "must be null for a basic placement")
            password = p.raw.get("password_template")
            if not isinstance(password, str):
                raise p.error("password_template", "is required for a basic placement")
            placements.append(Placement("basic", None, template, password))
            continue
        if p.raw.get("password_template") is not None:
            raise p.error("password_template", "only used by a basic placement")
        name = p.text("name")
        name_re = _HEADER_NAME_RE if location == "header" else _QUERY_NAME_RE
        if not name_re.fullmatch(name):
            raise p.error("name", f"invalid {location} name {name!r}")
        if any(c in template for c in "\r\n"):
            raise p.error("template", "must not contain line breaks")
        placements.append(Placement(location, name, template))
    if auth_mode == "none" and placements:
        raise r.error("placements", "must be empty for auth_mode none")
    if auth_mode != "none" and not placements:
        raise r.error(
            "placements",
            "say where the credential goes: at least one placement (a header, a query"
            " parameter or Basic auth)",
        )
    targets = [(p.location, (p.name or "").lower()) for p in placements]
    if len(set(targets)) != len(targets):
        raise r.error("placements", "two placements write the same header, query name or Basic")
    return tuple(placements)


def _check_credentials(
    r: EntryReader,
    auth_mode: str,
    fields: tuple[str, ...],
    placements: tuple[Placement, ...],
    templated: set[str],
) -> None:
    declared = set(fields)
    if auth_mode not in CREDENTIAL_MODES:  # fields_for_mode already kept credential_fields out
        if auth_mode != "none" and "token" not in templated:
            raise r.error("placements", "no placement sends {token}")
        return
    if auth_mode == "api_key" and declared != {"api_key"}:
        raise r.error("credential_fields", "auth_mode api_key takes exactly api_key")
    if auth_mode == "api_key_secret" and declared != {"api_key", "api_secret"}:
        raise r.error("credential_fields", "auth_mode api_key_secret takes api_key and api_secret")
    if auth_mode == "basic":
        basic = [p for p in placements if p.location == "basic"]
        if not basic:
            raise r.error("placements", "auth_mode basic needs a basic placement")
        basic_uses = template_fields(basic[0].template) | template_fields(
            basic[0].password_template or ""
        )
        if not ({"username", "password"} <= declared or "api_key" in declared & basic_uses):
            raise r.error(
                "credential_fields",
                "auth_mode basic takes username and password, or an api_key the basic "
                "placement uses",
            )
    for credential in fields:
        if credential not in templated:
            raise r.error("credential_fields", f"{credential!r} is declared but never sent")
