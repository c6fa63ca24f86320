"""The shipped integration catalog loads and validates; the validator refuses bad entries."""

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from app.integrations.catalog import load_catalog
from app.integrations.catalog_entry import CatalogEntry, Parameter, Placement
from app.integrations.catalog_reader import CatalogError, EntryProblems, template_fields
from app.integrations.catalog_validation import validate_entry

REQUIRED_KEYS = {
    "github",
    "gitlab",
    "googlecalendar",
    "googledrive",
    "gmail",
    "microsoftgraph",
    "slack",
    "notion",
    "hubspot",
    "salesforce",
    "zoom",
    "dropbox",
    "box",
    "asana",
    "clickup",
    "linear",
    "jira",
    "zendesk",
    "shopify",
    "airtable",
    "trello",
    "discord",
    "mailchimp",
    "pipedrive",
    "freshdesk",
    "stripe",
    "sendgrid",
}

OAUTH_ENTRY: dict[str, Any] = {
    "name": "Demo",
    "auth_mode": "oauth2",
    "base_url": "https://api.example.com/v1",
    "authorization_url": "https://example.com/oauth/authorize",
    "token_url": "https://example.com/oauth/token",
    "docs_url": "https://example.com/docs",
    "setup_guide": "Create an app at Example. Register the redirect URI shown here.",
}
API_KEY_ENTRY: dict[str, Any] = {
    "name": "Demo",
    "auth_mode": "api_key",
    "base_url": "https://api.example.com/v1",
    "credential_fields": ["api_key"],
    "placements": [{"location": "header", "name": "X-Api-Key", "template": "{api_key}"}],
    "docs_url": "https://example.com/docs",
    "setup_guide": "Create a key at Example. Enter it when connecting.",
}
SUBDOMAIN = [{"name": "subdomain", "label": "Subdomain"}]


def make_entry(
    *, base: Mapping[str, Any] = OAUTH_ENTRY, drop: tuple[str, ...] = (), **changes: Any
) -> dict[str, Any]:
    """Return a copy of base without the dropped fields and with changes applied."""
    raw = {name: value for name, value in base.items() if name not in drop}
    raw.update(changes)
    return raw


@pytest.fixture(scope="module")
def catalog() -> dict[str, CatalogEntry]:
    return load_catalog()


def test_shipped_catalog_has_every_required_provider(catalog: dict[str, CatalogEntry]) -> None:
    assert len(catalog) >= 25
    assert catalog.keys() >= REQUIRED_KEYS


def test_shipped_catalog_is_read_once_and_cannot_be_changed_through_a_caller() -> None:
    first = load_catalog()
    first.pop("github")
    second = load_catalog()
    assert "github" in second
    assert second["slack"] is load_catalog()["slack"]


def test_every_entry_has_a_short_guide_and_oauth_entries_mention_the_redirect_uri(
    catalog: dict[str, CatalogEntry],
) -> None:
    for key, entry in catalog.items():
        assert entry.key == key
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", entry.setup_guide.strip()) if s]
        assert 2 <= len(sentences) <= 4, key
        assert entry.docs_url.startswith("https://"), key
        if entry.auth_mode == "oauth2":
            assert "redirect URI shown on this settings page" in entry.setup_guide, key
            assert entry.authorization_url is not None and entry.token_url is not None, key


def test_oauth_entries_default_to_a_bearer_token(catalog: dict[str, CatalogEntry]) -> None:
    bearer = Placement(location="header", name="Authorization", template="Bearer {token}")
    assert catalog["github"].placements == (bearer,)
    assert catalog["github"].credential_fields == ()
    assert catalog["github"].token_request_method == "POST"


def test_google_entries_ask_for_offline_access(catalog: dict[str, CatalogEntry]) -> None:
    for key in ("gmail", "googlecalendar", "googledrive"):
        assert catalog[key].authorization_params["access_type"] == "offline"
        assert catalog[key].authorization_params["prompt"] == "consent"


def test_jira_calls_the_atlassian_api_gateway(catalog: dict[str, CatalogEntry]) -> None:
    assert catalog["jira"].base_url == "https://api.atlassian.com"
    assert catalog["jira"].authorization_params["audience"] == "api.atlassian.com"


def test_freshdesk_sends_the_api_key_as_basic_username_with_password_x(
    catalog: dict[str, CatalogEntry],
) -> None:
    freshdesk = catalog["freshdesk"]
    assert freshdesk.auth_mode == "basic"
    assert freshdesk.base_url == "https://{domain}.freshdesk.com/api/v2"
    assert freshdesk.credential_fields == ("api_key",)
    assert freshdesk.placements == (
        Placement(location="basic", name=None, template="{api_key}", password_template="X"),
    )
    assert [p.name for p in freshdesk.parameters] == ["domain"]


def test_trello_sends_key_and_token_in_the_query(catalog: dict[str, CatalogEntry]) -> None:
    trello = catalog["trello"]
    assert trello.auth_mode == "api_key_secret"
    assert {(p.location, p.name, p.template) for p in trello.placements} == {
        ("query", "key", "{api_key}"),
        ("query", "token", "{api_secret}"),
    }


def test_zendesk_urls_take_the_subdomain_parameter(catalog: dict[str, CatalogEntry]) -> None:
    zendesk = catalog["zendesk"]
    assert zendesk.base_url == "https://{subdomain}.zendesk.com/api/v2"
    for url in (zendesk.authorization_url, zendesk.token_url):
        assert url is not None and url.startswith("https://{subdomain}.zendesk.com/")
    (subdomain,) = zendesk.parameters
    assert subdomain.name == "subdomain"
    assert re.fullmatch(subdomain.pattern, "acme")
    assert not re.fullmatch(subdomain.pattern, "evil.example/x")


def test_shopify_takes_the_shop_and_its_own_token_header(
    catalog: dict[str, CatalogEntry],
) -> None:
    shopify = catalog["shopify"]
    assert shopify.base_url == "https://{shop}.myshopify.com/admin/api/2024-10"
    assert [p.name for p in shopify.parameters] == ["shop"]
    assert shopify.placements == (
        Placement(location="header", name="X-Shopify-Access-Token", template="{token}"),
    )
    assert shopify.scope_separator == ","


def test_a_minimal_entry_gets_the_documented_defaults() -> None:
    entry = validate_entry(
        "demo", make_entry(base_url="https://{subdomain}.example.com/api", parameters=SUBDOMAIN)
    )
    assert entry.parameters == (Parameter("subdomain", "Subdomain", r"^[A-Za-z0-9.-]+$"),)
    assert entry.pkce is True
    assert entry.token_auth_method == "client_secret_post"
    assert entry.scope_separator == " "
    assert entry.refresh_on_403 is False
    assert dict(entry.default_headers) == {}
    assert validate_entry("demo", API_KEY_ENTRY).placements[0].name == "X-Api-Key"


BAD_ENTRIES = [
    pytest.param(
        make_entry(base_url="http://api.example.com"),
        "base_url: must be an https URL",
        id="http-base-url",
    ),
    pytest.param(
        make_entry(placements=[{"location": "header", "name": "X", "template": "{tokn}"}]),
        "placements[0].template: unknown placeholder {tokn}",
        id="unknown-placeholder",
    ),
    pytest.param(
        make_entry(auth_mode="magic"), "auth_mode: unknown value 'magic'", id="unknown-auth-mode"
    ),
    pytest.param(
        make_entry(drop=("token_url",)),
        "token_url: required for OAuth2 authorization code sign-in (auth_mode oauth2)",
        id="missing-token-url",
    ),
    pytest.param(make_entry(colour="blue"), "unknown field(s): colour", id="unknown-field"),
    pytest.param(
        make_entry(
            base_url="https://{subdomain}.example.com",
            parameters=[{"name": "subdomain", "label": "Subdomain", "pattern": "[a-z"}],
        ),
        "parameters[0].pattern: not a valid regular expression",
        id="invalid-parameter-regex",
    ),
    pytest.param(
        make_entry(
            base_url="https://{subdomain}.example.com",
            parameters=[{"name": "subdomain", "label": "Subdomain", "pattern": ".+"}],
        ),
        "parameters[0].pattern: accepts the unsafe value 'a/b'",
        id="parameter-pattern-allows-a-path",
    ),
    pytest.param(
        make_entry(base_url="https://{host}/api", parameters=[{"name": "host", "label": "Host"}]),
        "base_url: a parameter in the host must be followed by a fixed domain",
        id="parameter-is-the-whole-host",
    ),
    pytest.param(
        make_entry(base_url="https://api.{subdomain}", parameters=SUBDOMAIN),
        "base_url: a parameter in the host must be followed by a fixed domain",
        id="parameter-is-the-domain",
    ),
    pytest.param(
        make_entry(base_url="https://{subdomain}.example.com/{region}", parameters=SUBDOMAIN),
        "base_url: unknown placeholder {region}",
        id="undeclared-url-parameter",
    ),
    pytest.param(
        make_entry(token_url="https://example.com/oauth/{token}"),
        "token_url: unknown placeholder {token}",
        id="credential-in-url",
    ),
    pytest.param(
        make_entry(base_url="https://user:pw@api.example.com"),
        "base_url: must not contain user info",
        id="userinfo",
    ),
    pytest.param(
        make_entry(base_url="https://api.example.com/v1?key=1"),
        "base_url: must not have a query string",
        id="query-in-base-url",
    ),
    pytest.param(
        make_entry(token_url="https://example.com/token#frag"),
        "token_url: must not have a fragment",
        id="fragment",
    ),
    pytest.param(
        make_entry(drop=("authorization_url",)),
        "authorization_url: required for OAuth2 authorization code sign-in (auth_mode oauth2)",
        id="missing-authorization-url",
    ),
    pytest.param(make_entry(name=""), "name: must be a non-empty string", id="empty-name"),
    pytest.param(
        make_entry(placements=[{"location": "header", "name": "X", "template": "{token.x}"}]),
        "placements[0].template: malformed template",
        id="attribute-lookup-in-template",
    ),
    pytest.param(
        make_entry(placements=[{"location": "cookie", "name": "X", "template": "{token}"}]),
        "placements[0].location: unknown value 'cookie'",
        id="unknown-location",
    ),
    pytest.param(
        make_entry(
            placements=[
                {"location": "header", "name": "X", "template": "{token}", "colour": "blue"}
            ]
        ),
        "placements[0]: unknown field(s): colour",
        id="unknown-placement-field",
    ),
    pytest.param(
        make_entry(placements=[{"location": "header", "name": "X", "template": "static"}]),
        "placements: no placement sends {token}",
        id="token-never-sent",
    ),
    pytest.param(
        make_entry(authorization_params={"redirect_uri": "https://evil.example"}),
        "authorization_params: 'redirect_uri' is set by the OAuth flow",
        id="reserved-authorization-param",
    ),
    pytest.param(
        make_entry(credential_fields=["api_key"]),
        "credential_fields: only used by auth modes with typed credentials, not oauth2",
        id="oauth-with-credential-fields",
    ),
    pytest.param(
        make_entry(base=API_KEY_ENTRY, scopes=["read"]),
        "scopes: only used by OAuth auth modes, not api_key",
        id="scopes-on-api-key",
    ),
    pytest.param(
        make_entry(base=API_KEY_ENTRY, credential_fields=["api_key", "api_secret"]),
        "credential_fields: auth_mode api_key takes exactly api_key",
        id="api-key-with-secret",
    ),
    pytest.param(
        make_entry(
            base=API_KEY_ENTRY,
            auth_mode="basic",
            placements=[{"location": "basic", "name": None, "template": "{api_key}"}],
        ),
        "placements[0].password_template: is required for a basic placement",
        id="basic-without-password",
    ),
    pytest.param(
        make_entry(
            base=API_KEY_ENTRY,
            auth_mode="basic",
            credential_fields=["username"],
            placements=[
                {
                    "location": "basic",
                    "name": None,
                    "template": "{username}",
                    "password_template": "X",
                }
            ],
        ),
        "credential_fields: auth_mode basic takes username and password",
        id="basic-username-only",
    ),
    pytest.param(
        make_entry(base=API_KEY_ENTRY, credential_fields=["api_token"]),
        "credential_fields: unknown credential field 'api_token'",
        id="unknown-credential-field",
    ),
    pytest.param(
        make_entry(parameters=SUBDOMAIN),
        "parameters: parameter 'subdomain' is never used",
        id="unused-parameter",
    ),
    pytest.param(
        make_entry(
            base_url="https://{api_key}.example.com", parameters=[{"name": "api_key", "label": "K"}]
        ),
        "parameters[0].name: 'api_key' must be an identifier and not a credential name",
        id="parameter-shadows-credential",
    ),
    pytest.param(
        make_entry(
            base=API_KEY_ENTRY,
            placements=[
                {"location": "header", "name": "X-Api-Key", "template": "{api_key}"},
                {"location": "header", "name": "x-api-key", "template": "{api_key}"},
            ],
        ),
        "placements: two placements write the same header",
        id="same-header-twice",
    ),
    pytest.param(
        make_entry(allowed_hosts=["http://files.example.com"]),
        "allowed_hosts: must be an https URL",
        id="allowed-origin-over-http",
    ),
    pytest.param(make_entry(pkce="yes"), "pkce: must be true or false", id="pkce-not-a-boolean"),
]


@pytest.mark.parametrize(("raw", "message"), BAD_ENTRIES)
def test_validator_rejects(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogError) as caught:
        validate_entry("demo", raw)
    assert str(caught.value).startswith("catalog entry 'demo': ")
    assert message in str(caught.value)


def test_the_templates_for_bad_entries_are_otherwise_valid() -> None:
    # Guards the table above: each bad entry differs from a valid one only by its mistake.
    validate_entry("demo", OAUTH_ENTRY)
    validate_entry("demo", API_KEY_ENTRY)


@pytest.mark.parametrize("key", ["Demo", "demo-app", "9demo", "demo_app", ""])
def test_validator_rejects_a_bad_key(key: str) -> None:
    with pytest.raises(CatalogError, match="key: must be lowercase letters and digits"):
        validate_entry(key, OAUTH_ENTRY)


def test_load_catalog_reads_a_given_file(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(
        '{"demo": {"name": "Demo", "auth_mode": "api_key", '
        '"base_url": "https://api.example.com", "credential_fields": ["api_key"], '
        '"placements": [{"location": "query", "name": "key", '
        '"template": "{api_key}"}], "docs_url": "https://example.com", '
        '"setup_guide": "Make a key. Paste it."}}'
    )
    assert load_catalog(path)["demo"].placements == (
        Placement(location="query", name="key", template="{api_key}"),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"demo": {}, "demo": {}}', "duplicate key 'demo'"),
        ("{not json", "cannot read catalog"),
        ("[]", "must be a JSON object keyed by entry key"),
        ('{"demo": []}', "catalog entry 'demo': must be a JSON object"),
    ],
)
def test_load_catalog_rejects_a_malformed_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(text)
    with pytest.raises(CatalogError, match=re.escape(message)):
        load_catalog(path)


def test_template_fields_lists_plain_placeholders() -> None:
    assert template_fields("Bearer {token}") == {"token"}
    assert template_fields("https://{shop}.example.com/{shop}/{api_key}") == {"shop", "api_key"}
    assert template_fields("no placeholders, {{escaped}}") == set()


@pytest.mark.parametrize(
    "template",
    ["{token.__class__}", "{0}", "{}", "{token!r}", "{token:>9}", "{token[0]}", "{unclosed"],
)
def test_template_fields_refuses_anything_but_plain_names(template: str) -> None:
    with pytest.raises(ValueError):
        template_fields(template)


def test_the_validator_reports_every_wrong_field_the_first_as_its_own_message() -> None:
    raw = {
        "name": "",
        "auth_mode": "api_key",
        "base_url": "https://{tenant}.example.com",
        "parameters": [{"name": "tenant", "label": "Tenant", "pattern": ".*"}],
        "placements": [{"location": "header", "name": "X Key", "template": "{api_key}"}],
        "default_headers": {"Bad Name": "x"},
        "docs_url": "https://example.com/docs",
        "setup_guide": "Guide.",
        "pkce": "yes",
    }
    with pytest.raises(EntryProblems) as caught:
        validate_entry("demo", raw)
    problems = caught.value.problems
    assert [(p.path, p.problem) for p in problems] == [
        ("name", "must be a non-empty string"),
        ("pkce", "only used by auth_mode oauth2, not api_key"),
        ("parameters[0].pattern", "accepts the unsafe value 'a/b'"),
        ("placements[0].name", "invalid header name 'X Key'"),
        ("default_headers", "invalid name 'Bad Name'"),
    ]
    # The first problem is the one a lone CatalogError would have named.
    assert str(caught.value) == "catalog entry 'demo': name: must be a non-empty string"


def test_a_field_that_builds_on_a_wrong_one_is_not_judged_on_a_stand_in() -> None:
    raw = {
        "name": "Demo",
        "auth_mode": "api_key",
        "base_url": "https://{tenant}.example.com",
        "parameters": [{"name": "tenant"}],
        "docs_url": "https://example.com/docs",
        "setup_guide": "Guide.",
    }
    with pytest.raises(EntryProblems) as caught:
        validate_entry("demo", raw)
    # Without its parameters the base URL's {tenant} would be unknown: it is left unjudged.
    assert [p.field for p in caught.value.problems] == ["parameters", "placements"]
