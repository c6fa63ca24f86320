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
from functools import partial
from types import MappingProxyType
from typing import Any, cast, get_args

from app.integrations.catalog_calls import check_plain_path, read_example, read_whoami
from app.integrations.catalog_credentials import (
    check_credentials,
    credential_fields_of,
    placement_placeholders,
    placements_of,
)
from app.integrations.catalog_entry import (
    AUTH_MODE_WORDS,
    AUTH_MODES,
    AUTHORIZATION_CODE_ONLY_FIELDS,
    CREDENTIAL_FIELDS,
    DEFAULT_PARAMETER_PATTERN,
    ENTRY_FIELDS,
    MAX_KEY_LENGTH,
    MAX_NAME_LENGTH,
    MAX_URL_LENGTH,
    OAUTH_MODES,
    OAUTH_ONLY_FIELDS,
    AuthMode,
    CatalogEntry,
    Parameter,
    Placement,
    TokenAuthMethod,
    TokenRequestMethod,
    Verification,
    VerifyMethod,
    fields_for_mode,
    routing_header,
)
from app.integrations.catalog_reader import (
    HEADER_NAME_RE,
    HOST_RE,
    QUERY_NAME_RE,
    EntryProblems,
    EntryReader,
    Problems,
    check_url,
    check_values,
)

_KEY_RE = re.compile(r"[a-z][a-z0-9]*")
_PARAMETER_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# Values a parameter pattern must refuse: each could move a request to another host or path.
_UNSAFE_PARAMETER_PROBES = ("a/b", "a@b", "a:b", "a?b", "a#b", "a\\b", "a b", "a%2fb", "a{b}")
_RESERVED_AUTHORIZATION_PARAMS = {"client_id", "redirect_uri", "response_type", "state", "scope"}
_PARAMETER_FIELDS = frozenset(f.name for f in fields(Parameter))
_VERIFICATION_FIELDS = frozenset(f.name for f in fields(Verification))


# The fields whose placeholders count as uses of a connection parameter.
_PARAMETER_USERS = (
    *("auth_mode", "parameters", "base_url", "authorization_url", "token_url", "revoke_url"),
    *("authorization_params", "credential_fields", "placements", "default_headers"),
    "default_query",
)


def validate_entry(key: str, raw: Mapping[str, Any]) -> CatalogEntry:
    """Validate one raw catalog entry and return it as a CatalogEntry, or raise EntryProblems
    (a CatalogError naming the first problem and listing every one)."""
    r = EntryReader(key, raw)
    p = Problems()
    p.check(lambda: _check_key(r, key), None)
    p.check(lambda: r.reject_unknown(ENTRY_FIELDS), None)
    name = p.check(lambda: _text_within(r, "name", MAX_NAME_LENGTH), "")
    auth_mode: AuthMode = p.check(
        lambda: cast(AuthMode, r.choice("auth_mode", tuple(sorted(AUTH_MODES)))), "none"
    )
    by_mode = ("auth_mode",)  # checks that ask which fields the auth mode uses
    oauth = auth_mode in OAUTH_MODES
    p.check(lambda: _check_misplaced(r, auth_mode), None, needs=by_mode)

    parameters: tuple[Parameter, ...] = p.check(lambda: _parameters(r), ())
    params = {parameter.name for parameter in parameters}
    used: set[str] = set()

    def url_placeholders(url_field: str, url: str, *, allow_query: bool) -> set[str]:
        return p.check(
            lambda: check_url(r, url_field, url, params, allow_query=allow_query),
            set[str](),
            needs=(url_field, "parameters"),
        )

    base_url = p.check(lambda: _text_within(r, "base_url", MAX_URL_LENGTH), "")
    used |= url_placeholders("base_url", base_url, allow_query=False)
    urls: dict[str, str | None] = {}
    for url_field in ("authorization_url", "token_url", "revoke_url"):
        urls[url_field] = None
        if raw.get(url_field) is not None:
            urls[url_field] = p.check(partial(_text_within, r, url_field, MAX_URL_LENGTH), "")
            used |= url_placeholders(url_field, urls[url_field] or "", allow_query=True)
    # One check per URL: an OAuth2 form missing both hears of both at once.
    for url_field in ("token_url", "authorization_url"):
        p.check(partial(_check_required_url, r, auth_mode, url_field, urls), None, needs=by_mode)

    scope_separator = p.check(lambda: _scope_separator(r), " ")
    scopes: tuple[str, ...] = p.check(
        lambda: _scopes(r, scope_separator), (), needs=("scope_separator",)
    )

    authorization_params: Mapping[str, str] = p.check(
        lambda: _authorization_params(r), MappingProxyType({})
    )
    used |= p.check(
        lambda: check_values(r, "authorization_params", authorization_params, params),
        set[str](),
        needs=("authorization_params", "parameters"),
    )

    credential_fields: tuple[str, ...] = p.check(
        lambda: credential_fields_of(r, auth_mode), (), needs=by_mode
    )
    placements: tuple[Placement, ...] = p.check(
        lambda: placements_of(r, auth_mode, credential_fields),
        (),
        needs=(*by_mode, "credential_fields"),
    )
    credential_variables = {"token"} if oauth else set(credential_fields)
    templated = p.check(
        lambda: placement_placeholders(r, placements, credential_variables | params),
        set[str](),
        needs=(*by_mode, "credential_fields", "placements", "parameters"),
    )
    used |= templated
    p.check(
        lambda: check_credentials(r, auth_mode, credential_fields, placements, templated),
        None,
        needs=(*by_mode, "credential_fields", "placements", "parameters"),
    )

    headers_and_query: dict[str, Mapping[str, str]] = {}
    for map_field, name_re in (
        ("default_headers", HEADER_NAME_RE),
        ("default_query", QUERY_NAME_RE),
    ):
        values: Mapping[str, str] = p.check(
            partial(r.text_map, map_field, name_re), MappingProxyType({})
        )
        headers_and_query[map_field] = values
        if map_field == "default_headers":
            p.check(partial(_check_header_names, r, values), None, needs=(map_field,))
        used |= p.check(
            partial(check_values, r, map_field, values, params),
            set[str](),
            needs=(map_field, "parameters"),
        )

    p.check(lambda: _check_parameters_used(r, parameters, used), None, needs=_PARAMETER_USERS)

    verify = p.check(lambda: _verification(r), None)
    allowed_hosts: tuple[str, ...] = p.check(lambda: _allowed_hosts(r), ())
    docs_url = p.check(lambda: _docs_url(r), "")
    setup_guide = p.check(lambda: r.text("setup_guide"), "")
    token_request_method: TokenRequestMethod = p.check(
        lambda: cast(
            TokenRequestMethod,
            r.choice("token_request_method", get_args(TokenRequestMethod), "POST"),
        ),
        "POST",
    )
    token_auth_method: TokenAuthMethod = p.check(
        lambda: cast(
            TokenAuthMethod,
            r.choice("token_auth_method", get_args(TokenAuthMethod), "client_secret_post"),
        ),
        "client_secret_post",
    )
    pkce = p.check(lambda: r.flag("pkce", True), True)
    refresh_on_403 = p.check(lambda: r.flag("refresh_on_403", False), False)
    whoami = p.check(lambda: read_whoami(r), None)
    example = p.check(lambda: read_example(r), None)
    if p.by_field:
        raise EntryProblems(list(p.by_field.values()))

    return CatalogEntry(
        key=key,
        name=name,
        auth_mode=auth_mode,
        base_url=base_url,
        authorization_url=urls["authorization_url"],
        token_url=urls["token_url"],
        token_request_method=token_request_method,
        token_auth_method=token_auth_method,
        revoke_url=urls["revoke_url"],
        scopes=scopes,
        scope_separator=scope_separator,
        pkce=pkce,
        authorization_params=authorization_params,
        placements=placements,
        credential_fields=credential_fields,
        parameters=parameters,
        default_headers=headers_and_query["default_headers"],
        default_query=headers_and_query["default_query"],
        allowed_hosts=allowed_hosts,
        refresh_on_403=refresh_on_403,
        verify=verify,
        whoami=whoami,
        example=example,
        docs_url=docs_url,
        setup_guide=setup_guide,
    )


def _check_key(r: EntryReader, key: str) -> None:
    if not _KEY_RE.fullmatch(key):
        raise r.error("key", "must be lowercase letters and digits, starting with a letter")
    _check_length(r, "key", key, MAX_KEY_LENGTH)


def _text_within(r: EntryReader, name: str, limit: int) -> str:
    text = r.text(name)
    _check_length(r, name, text, limit)
    return text


def _check_misplaced(r: EntryReader, auth_mode: str) -> None:
    # Empty values are allowed where a field is unused: they say nothing.
    misplaced = sorted(
        k for k in r.raw.keys() - fields_for_mode(auth_mode) if r.raw[k] not in ([], {}, None)
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


def _check_required_url(
    r: EntryReader, auth_mode: str, url_field: str, urls: Mapping[str, str | None]
) -> None:
    # Said in the form's words for the mode too (a form's empty field is asked for by
    # integration_fields.EMPTY_FIELDS instead).
    if url_field == "token_url" and auth_mode in OAUTH_MODES and urls["token_url"] is None:
        raise r.error("token_url", f"required for {AUTH_MODE_WORDS[auth_mode]} sign-in"
                      f" (auth_mode {auth_mode})")
    if url_field == "authorization_url" and auth_mode == "oauth2" and urls[url_field] is None:
        raise r.error("authorization_url", "required for OAuth2 authorization code sign-in"
                      " (auth_mode oauth2)")


def _scope_separator(r: EntryReader) -> str:
    scope_separator = r.raw.get("scope_separator", " ")
    if scope_separator not in (" ", ","):
        raise r.error("scope_separator", "must be a space or a comma")
    return str(scope_separator)


def _scopes(r: EntryReader, scope_separator: str) -> tuple[str, ...]:
    scopes = r.text_list("scopes")
    for scope in scopes:
        if not scope or any(c.isspace() for c in scope) or scope_separator in scope:
            raise r.error("scopes", f"scope {scope!r} is empty or holds whitespace or separator")
    return scopes


def _authorization_params(r: EntryReader) -> Mapping[str, str]:
    authorization_params = r.text_map("authorization_params")
    for param_name in authorization_params:
        if param_name in _RESERVED_AUTHORIZATION_PARAMS or param_name.startswith("code_"):
            raise r.error("authorization_params", f"{param_name!r} is set by the OAuth flow")
    return authorization_params


def _check_parameters_used(
    r: EntryReader, parameters: tuple[Parameter, ...], used: set[str]
) -> None:
    for parameter in parameters:
        if parameter.name not in used:
            raise r.error("parameters", f"parameter {parameter.name!r} is never used")


def _allowed_hosts(r: EntryReader) -> tuple[str, ...]:
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
    return allowed_hosts


def _docs_url(r: EntryReader) -> str:
    docs_url = r.text("docs_url")
    # A documentation link may point at an anchor; endpoints may not.
    check_url(r, "docs_url", docs_url.partition("#")[0], set(), allow_query=True)
    return docs_url


def _check_header_names(r: EntryReader, headers: Mapping[str, str]) -> None:
    # As scripts may not: these reroute the request or misstate where it came from.
    for name in headers:
        if routing_header(name):
            raise r.error(
                "default_headers",
                f"{name} is set by the server (Host, Forwarded, X-Real-IP and X-Forwarded-*"
                " cannot be default headers)",
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
