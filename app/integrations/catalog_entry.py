"""A catalog entry's shape and the rules of integration fields: the auth modes, which fields
each mode uses, the default credential placements, the parameter pattern and the length limits
(one owner, imported by the app, the models and the validator in catalog_validation).

Standard library only. Raw entries are read field by field in catalog_reader; this module holds
what a validated entry is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal, get_args

from app.integrations.catalog_calls import MAX_IDENTITY_LENGTH as MAX_IDENTITY_LENGTH
from app.integrations.catalog_calls import Example, WhoAmI

AuthMode = Literal[
    "oauth2", "oauth2_client_credentials", "api_key", "api_key_secret", "basic", "none"
]
Location = Literal["header", "query", "basic"]
TokenRequestMethod = Literal["POST", "GET"]
TokenAuthMethod = Literal["client_secret_basic", "client_secret_post"]

AUTH_MODES: frozenset[str] = frozenset(get_args(AuthMode))
# How pages name each mode (the form's choices, in this order).
AUTH_MODE_WORDS: dict[str, str] = {
    "oauth2": "OAuth2 authorization code",
    "oauth2_client_credentials": "OAuth2 client credentials",
    "api_key": "API key",
    "api_key_secret": "API key + secret",
    "basic": "Basic (username + password)",
    "none": "None",
}
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
# Length limits: the database columns, the forms and the validators all import these.
MAX_KEY_LENGTH = 64
MAX_NAME_LENGTH = 200
MAX_LABEL_LENGTH = 64
MAX_URL_LENGTH = 500
MAX_CLIENT_ID_LENGTH = 255
# Bounds on what an admin lists (DESIGN §6): every one is sent or checked on each call.
MAX_ALLOWED_HOSTS = 50
MAX_EXTRA_ENTRIES = 50  # default headers, default query parameters, authorization params
MAX_HEADER_NAME_LENGTH = 256
MAX_HEADER_VALUE_LENGTH = 8 * 1024
# A typed API key, secret or password (and an OAuth client secret): far beyond any real one,
# well below what a provider's header limit takes.
MAX_CREDENTIAL_LENGTH = 8 * 1024

# Headers that would choose another virtual host or tell the service it was reached for
# another origin: neither a script nor an integration's settings may send them (the server
# sets Host from the URL). destinations refuses them in calls, the validator in settings.
ROUTING_HEADERS: frozenset[str] = frozenset({"host", "forwarded", "x-real-ip"})
ROUTING_HEADER_PREFIX = "x-forwarded-"


def routing_header(name: str) -> bool:
    """True for Host, Forwarded, X-Real-IP and X-Forwarded-*, in any case."""
    lowered = name.strip().lower()
    return lowered in ROUTING_HEADERS or lowered.startswith(ROUTING_HEADER_PREFIX)


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


# The fields a raw entry may hold (its key names it, it is not a field of it).
ENTRY_FIELDS: frozenset[str] = frozenset(f.name for f in fields(CatalogEntry)) - {"key"}


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
    return ENTRY_FIELDS - unused


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
