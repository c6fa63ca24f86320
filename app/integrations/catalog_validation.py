"""Validating one raw catalog entry (a catalog.json entry or an integration's form) into a
CatalogEntry: which fields its auth mode allows, its URLs, placements, credential fields and
connection parameters, and whether they fit together.

Standard library only. Typed reads of single fields live in catalog_reader; this module holds
the rules that span an entry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, cast, get_args

from app.integrations.catalog_calls import check_plain_path, read_example, read_whoami
from app.integrations.catalog_entry import (
    AUTH_MODES,
    AUTHORIZATION_CODE_ONLY_FIELDS,
    CREDENTIAL_FIELDS,
    CREDENTIAL_MODES,
    DEFAULT_CREDENTIAL_FIELDS,
    DEFAULT_PARAMETER_PATTERN,
    ENTRY_FIELDS,
    MAX_KEY_LENGTH,
    MAX_NAME_LENGTH,
    MAX_URL_LENGTH,
    OAUTH_MODES,
    OAUTH_ONLY_FIELDS,
    AuthMode,
    CatalogEntry,
    Location,
    Parameter,
    Placement,
    TokenAuthMethod,
    TokenRequestMethod,
    Verification,
    VerifyMethod,
    default_placements,
    fields_for_mode,
)
from app.integrations.catalog_reader import (
    HOST_RE,
    EntryReader,
    check_template,
    check_url,
    check_values,
    template_fields,
)

_KEY_RE = re.compile(r"[a-z][a-z0-9]*")
_PARAMETER_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
_QUERY_NAME_RE = re.compile(r"[A-Za-z0-9._~-]+")
# Values a parameter pattern must refuse: each could move a request to another host or path.
_UNSAFE_PARAMETER_PROBES = ("a/b", "a@b", "a:b", "a?b", "a#b", "a\\b", "a b", "a%2fb", "a{b}")
_RESERVED_AUTHORIZATION_PARAMS = {"client_id", "redirect_uri", "response_type", "state", "scope"}
_PLACEMENT_FIELDS = frozenset(f.name for f in fields(Placement))
_PARAMETER_FIELDS = frozenset(f.name for f in fields(Parameter))
_VERIFICATION_FIELDS = frozenset(f.name for f in fields(Verification))


def validate_entry(key: str, raw: Mapping[str, Any]) -> CatalogEntry:
    """Validate one raw catalog entry and return it as a CatalogEntry, or raise CatalogError."""
    r = EntryReader(key, raw)
    if not _KEY_RE.fullmatch(key):
        raise r.error("key", "must be lowercase letters and digits, starting with a letter")
    _check_length(r, "key", key, MAX_KEY_LENGTH)
    r.reject_unknown(ENTRY_FIELDS)
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
