"""Adding and editing integrations through the REST API, the way the Management page does:
every catalog entry can be added and edited, and every malformed field is a 400 naming it."""

from __future__ import annotations

import html
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.integrations.catalog import load_catalog
from app.integrations.catalog_entry import (
    MAX_ALLOWED_HOSTS,
    MAX_CLIENT_ID_LENGTH,
    MAX_CREDENTIAL_LENGTH,
    MAX_EXTRA_ENTRIES,
    MAX_HEADER_NAME_LENGTH,
    MAX_HEADER_VALUE_LENGTH,
    MAX_KEY_LENGTH,
    MAX_LABEL_LENGTH,
    MAX_NAME_LENGTH,
    MAX_URL_LENGTH,
    OAUTH_MODES,
)
from app.models import Role
from tests.conftest import signed_in_lab

CSRF = "test-csrf-token"
HEADERS = {"X-CSRF-Token": CSRF}
CATALOG = sorted(load_catalog().values(), key=lambda entry: entry.key)


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    """A client signed in as an admin of facility `lab`."""
    return signed_in_lab(app, roles=[Role.admin], csrf=CSRF)["admin"]


def _create(client: FlaskClient, body: dict[str, Any]) -> Any:
    return client.post("/api/f/lab/integrations", json=body, headers=HEADERS)


def _patch(client: FlaskClient, key: str, body: dict[str, Any]) -> Any:
    return client.patch(f"/api/f/lab/integrations/{key}", json=body, headers=HEADERS)


@pytest.mark.parametrize("entry", CATALOG, ids=[entry.key for entry in CATALOG])
def test_every_catalog_entry_can_be_added_and_edited(admin: FlaskClient, entry: Any) -> None:
    body: dict[str, Any] = {"catalog_key": entry.key}
    if entry.auth_mode in OAUTH_MODES:
        body.update(client_id="the-client", client_secret="the-secret")
    created = _create(admin, body)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["auth_mode"] == entry.auth_mode
    edit: dict[str, Any] = {"name": f"{entry.name} (lab)", "allowed_hosts": []}
    if entry.auth_mode in OAUTH_MODES:
        edit["client_secret"] = "a-new-secret"
    edited = _patch(admin, entry.key, edit)
    assert edited.status_code == 200, edited.get_json()
    assert edited.get_json()["name"] == f"{entry.name} (lab)"
    assert admin.get(f"/api/f/lab/integrations/{entry.key}").get_json()["name"] == (
        f"{entry.name} (lab)"
    )


KEYED: dict[str, Any] = {
    "key": "keyed",
    "name": "Keyed",
    "auth_mode": "api_key",
    "base_url": "https://api.example.com/v1",
    "credential_fields": ["api_key"],
    "placements": [{"location": "header", "name": "X-API-Key", "template": "{api_key}"}],
}
OAUTH: dict[str, Any] = {
    "key": "oauthed",
    "name": "OAuthed",
    "auth_mode": "oauth2",
    "base_url": "https://api.example.com/v1",
    "authorization_url": "https://example.com/authorize",
    "token_url": "https://example.com/token",
    "client_id": "the-client",
    "client_secret": "the-secret",
}
LONG_KEY = "k" * (MAX_KEY_LENGTH + 1)
LONG_NAME = "n" * (MAX_NAME_LENGTH + 1)
# What an empty name and base URL are told, on the create and the edit alike.
NAME_ASKED = (
    f"give the integration a name (up to {MAX_NAME_LENGTH} characters): it is what people see"
    " when they connect an account to it"
)
BASE_URL_ASKED = (
    "give the integration a base URL (such as https://api.example.com/v1): the paths scripts"
    " call are sent under it"
)
# And the OAuth fields an auth mode needs (they said "token_url: required for ... sign-in").
AUTHORIZATION_URL_ASKED = (
    "give the provider's authorization URL (such as https://example.com/oauth/authorize):"
    " people are sent there to sign in and allow access"
)
TOKEN_URL_ASKED = (
    "give the provider's token URL (such as https://example.com/oauth/token): the server gets"
    " and refreshes access tokens there"
)
CLIENT_ID_ASKED = (
    "give the client id the provider issued for this app (from its developer settings): the"
    " server names it in every sign-in and token request"
)

# (base body, field, malformed value): each must be a 400 naming exactly that field.
MALFORMED = [
    (KEYED, "placements", {"location": "header", "name": "X", "template": "{api_key}"}),
    (KEYED, "placements", "[{not json"),
    (KEYED, "placements", [1]),
    (KEYED, "placements", [{"location": "head", "name": "X", "template": "{api_key}"}]),
    (KEYED, "placements", [{"location": "header", "name": "X", "template": "{nope}"}]),
    (KEYED, "parameters", {"name": "tenant"}),
    (KEYED, "parameters", [{"name": "tenant"}]),
    (KEYED, "default_headers", ["Accept"]),
    (KEYED, "default_headers", {"Accept": 5}),
    (KEYED, "default_query", "q=1"),
    (KEYED, "allowed_hosts", "files.example.com"),
    (KEYED, "base_url", "https://[::1"),
    (KEYED, "base_url", 5),
    (KEYED, "name", ["Keyed"]),
    (KEYED, "name", LONG_NAME),
    (KEYED, "key", LONG_KEY),
    (KEYED, "key", 5),
    (KEYED, "auth_mode", "magic"),
    (KEYED, "credential_fields", "api_key"),
    (OAUTH, "scopes", "read write"),
    (OAUTH, "authorization_params", "access_type=offline"),
    (OAUTH, "token_url", "https://[example.com/token"),
    (OAUTH, "token_request_method", "PUT"),
    (OAUTH, "pkce", "yes"),
    (OAUTH, "client_id", 5),
    (OAUTH, "client_id", "c" * (MAX_CLIENT_ID_LENGTH + 1)),
    (KEYED, "base_url", "https://api.example.com/" + "p" * MAX_URL_LENGTH),
    (OAUTH, "token_url", "https://example.com/" + "t" * MAX_URL_LENGTH),
    (OAUTH, "client_secret", ["x"]),
    # Lists and text are bounded (DESIGN §6): each of these was a 201.
    (KEYED, "allowed_hosts", [f"h{n}.example.com" for n in range(MAX_ALLOWED_HOSTS + 1)]),
    (KEYED, "default_headers", {f"X-H{n}": "v" for n in range(MAX_EXTRA_ENTRIES + 1)}),
    (KEYED, "default_headers", {"X-A": "v" * (MAX_HEADER_VALUE_LENGTH + 1)}),
    (KEYED, "default_headers", {"X" * (MAX_HEADER_NAME_LENGTH + 1): "v"}),
    (KEYED, "default_query", {f"q{n}": "v" for n in range(MAX_EXTRA_ENTRIES + 1)}),
    (OAUTH, "authorization_params", {"a": "v" * (MAX_HEADER_VALUE_LENGTH + 1)}),
    (OAUTH, "client_secret", "s" * (MAX_CREDENTIAL_LENGTH + 1)),
    # Headers scripts may not set (they reroute a request) are no settings either.
    (KEYED, "default_headers", {"Host": "evil.example.com"}),
    (KEYED, "default_headers", {"forwarded": "for=1.2.3.4"}),
    (KEYED, "default_headers", {"X-Forwarded-Host": "evil.example.com"}),
    (KEYED, "default_headers", {"X-Real-IP": "10.0.0.1"}),
    (KEYED, "placements", [{"location": "header", "name": "Host", "template": "{api_key}"}]),
]


@pytest.mark.parametrize(
    ("base", "field", "value"),
    MALFORMED,
    ids=[f"{base['key']}-{field}-{index}" for index, (base, field, _v) in enumerate(MALFORMED)],
)
def test_a_malformed_field_is_a_400_naming_it(
    admin: FlaskClient, base: dict[str, Any], field: str, value: Any
) -> None:
    answer = _create(admin, {**base, field: value})
    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    assert error["field"] == field
    assert not error["message"].startswith("catalog entry")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("placements", {"location": "header"}),
        ("name", LONG_NAME),
        ("default_headers", "Accept: text/plain"),
        ("allowed_hosts", 7),
    ],
)
def test_a_malformed_edit_is_a_400_naming_the_field(
    admin: FlaskClient, field: str, value: Any
) -> None:
    assert _create(admin, KEYED).status_code == 201
    answer = _patch(admin, "keyed", {field: value})
    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["error"]["field"] == field


def test_a_custom_integration_with_several_wrong_fields_hears_of_each_at_once(
    admin: FlaskClient,
) -> None:
    body = {
        **OAUTH,
        "key": "9lives",
        "name": "",
        "base_url": "http://api.example.com/v1",
        "token_url": None,
        "scopes": ["read write"],
        "client_id": "",
    }
    answer = _create(admin, body)
    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    messages = {problem["field"]: problem["message"] for problem in error["errors"]}
    assert messages == {
        "key": "the key must be letters and digits, starting with a letter",
        "name": NAME_ASKED,
        "base_url": "base_url: must be an https URL",
        "token_url": TOKEN_URL_ASKED,
        "scopes": "scopes: scope 'read write' is empty or holds whitespace or separator",
        "client_id": CLIENT_ID_ASKED,
    }
    # The one-error shape stays: the first problem is the error's own message and field.
    assert (error["code"], error["field"], error["message"]) == (
        "invalid_input",
        "key",
        messages["key"],
    )
    assert all(problem["code"] == "invalid_input" for problem in error["errors"])


def test_an_edit_with_several_wrong_fields_hears_of_each_at_once(admin: FlaskClient) -> None:
    assert _create(admin, OAUTH).status_code == 201
    answer = _patch(
        admin,
        "oauthed",
        {"name": "n" * (MAX_NAME_LENGTH + 1), "base_url": "https://api.example.com/?q=1",
         "issuer": "http://idp.example.com", "client_id": "c" * (MAX_CLIENT_ID_LENGTH + 1)},
    )
    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    assert [problem["field"] for problem in error["errors"]] == [
        "name", "base_url", "issuer", "client_id"
    ]
    assert error["field"] == "name"
    assert admin.get("/api/f/lab/integrations/oauthed").get_json()["name"] == "OAuthed"


def test_a_taken_key_is_still_a_409_of_its_own(admin: FlaskClient) -> None:
    assert _create(admin, KEYED).status_code == 201
    answer = _create(admin, {**KEYED, "base_url": "http://api.example.com"})
    assert answer.status_code == 409
    assert answer.get_json()["error"]["field"] == "key"
    # It said only that the key was taken, not what to do about it.
    assert answer.get_json()["error"]["message"].endswith(
        ": give this one another key (scripts call it by its key), or change the one it "
        "has from its Settings on the Management page")


def test_lists_and_values_up_to_the_limits_are_stored_whole(admin: FlaskClient) -> None:
    hosts = [f"h{n}.example.com" for n in range(MAX_ALLOWED_HOSTS)]
    headers = {f"X-H{n}": "v" for n in range(MAX_EXTRA_ENTRIES - 1)}
    headers["X" * MAX_HEADER_NAME_LENGTH] = "v" * MAX_HEADER_VALUE_LENGTH
    created = _create(admin, {**KEYED, "allowed_hosts": hosts, "default_headers": headers})
    assert created.status_code == 201, created.get_json()
    stored = admin.get("/api/f/lab/integrations/keyed").get_json()
    assert stored["allowed_hosts"] == hosts
    assert len(stored["default_headers"]) == MAX_EXTRA_ENTRIES


def test_a_credential_too_long_to_send_is_refused_before_any_call(admin: FlaskClient) -> None:
    assert _create(admin, {**KEYED, "verify": {"method": "GET", "path": "/me"}}).status_code == 201
    answer = admin.post(
        "/api/f/lab/integrations/keyed/test",
        json={"fields": {"api_key": "k" * (MAX_CREDENTIAL_LENGTH + 1)}},
        headers=HEADERS,
    )
    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["error"]["field"] == "api_key"


def test_names_and_keys_up_to_the_limits_are_stored_whole(admin: FlaskClient) -> None:
    key, name = "k" * MAX_KEY_LENGTH, "n" * MAX_NAME_LENGTH
    created = _create(admin, {**KEYED, "key": key, "name": name})
    assert created.status_code == 201, created.get_json()
    stored = admin.get(f"/api/f/lab/integrations/{key}").get_json()
    assert (stored["key"], stored["name"]) == (key, name)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"fields": {"api_key": "k"}, "label": "l" * (MAX_LABEL_LENGTH + 1)}, "label"),
        ({"fields": {"api_key": "k"}, "label": 5}, "label"),
        ({"fields": ["k"]}, "fields"),
        ({"fields": {"api_key": 5}}, "api_key"),
        ({"fields": {"api_key": "k" * (MAX_CREDENTIAL_LENGTH + 1)}}, "api_key"),
        ({"fields": {"api_key": "k"}, "parameters": ["x"]}, "parameters"),
    ],
)
def test_a_malformed_connection_is_a_400_naming_the_field(
    admin: FlaskClient, body: dict[str, Any], field: str
) -> None:
    assert _create(admin, KEYED).status_code == 201
    answer = admin.post("/api/f/lab/integrations/keyed/accounts", json=body, headers=HEADERS)
    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["error"]["field"] == field


def test_a_label_of_the_longest_length_is_kept_whole(admin: FlaskClient) -> None:
    assert _create(admin, KEYED).status_code == 201
    label = "l" * MAX_LABEL_LENGTH
    answer = admin.post(
        "/api/f/lab/integrations/keyed/accounts",
        json={"fields": {"api_key": "k"}, "label": label},
        headers=HEADERS,
    )
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["label"] == label


@pytest.mark.parametrize("label", ["work \N{ROCKET}", "B\N{LATIN SMALL LETTER U WITH DIAERESIS}ro"])
def test_the_label_field_says_which_characters_the_server_takes(
    admin: FlaskClient, label: str
) -> None:
    """A label of "Büro" was refused as "labels may hold letters, ...": it says which."""
    assert _create(admin, KEYED).status_code == 201
    refused = admin.post(
        "/api/f/lab/integrations/keyed/accounts",
        json={"fields": {"api_key": "k"}, "label": label},
        headers=HEADERS,
    )
    assert refused.status_code == 400
    message = refused.get_json()["error"]["message"]
    allowed = message.removeprefix("labels may hold ")
    assert allowed == "letters A-Z and a-z (no accents), digits, spaces, '.', '-' and '_'"
    page = html.unescape(admin.get("/settings/integrations").get_data(as_text=True))
    assert f"A label: up to {MAX_LABEL_LENGTH} {allowed}." in page
    # A labelled account is not the one `account="user"` (or a call naming none) takes.
    assert (
        "Leave it empty for your default account, the one scripts use unless they name a label."
        in page
    )
    assert "A label you already use (or none, when you have a default account) replaces" in page


def test_adding_an_account_under_a_label_in_use_replaces_that_one(admin: FlaskClient) -> None:
    """What the label's hint says: the same label is the same account, with new credentials."""
    assert _create(admin, KEYED).status_code == 201
    url = "/api/f/lab/integrations/keyed/accounts"
    first = admin.post(url, json={"fields": {"api_key": "k1"}, "label": "work"}, headers=HEADERS)
    other = admin.post(url, json={"fields": {"api_key": "k2"}, "label": ""}, headers=HEADERS)
    again = admin.post(url, json={"fields": {"api_key": "k3"}, "label": "work"}, headers=HEADERS)
    assert first.status_code == 201 and other.status_code == 201
    assert again.status_code in (200, 201)
    assert again.get_json()["id"] == first.get_json()["id"] != other.get_json()["id"]
    mine = admin.get("/api/f/lab/accounts", headers=HEADERS).get_json()
    assert sorted(a["label"] for a in mine) == ["", "work"]


def test_the_same_key_added_twice_at_once_is_a_409_not_a_500(
    admin: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.services import integrations_admin

    # Both requests passed the check before either committed (a double-click).
    monkeypatch.setattr(integrations_admin, "_unique_key", lambda *_args: None)
    first = _create(admin, {"catalog_key": "sendgrid", "key": "sendgrid"})
    assert first.status_code == 201, first.get_json()
    second = _create(admin, {"catalog_key": "sendgrid", "key": "sendgrid"})
    assert second.status_code == 409, second.get_data(as_text=True)[:300]
    assert "reload and try again" in second.get_json()["error"]["message"]
    assert [i["key"] for i in admin.get("/api/f/lab/integrations").get_json()] == ["sendgrid"]


def test_a_key_integration_without_placements_is_told_where_the_key_could_go(
    admin: FlaskClient,
) -> None:
    answer = _create(admin, {"key": "mine", "name": "Mine", "auth_mode": "api_key",
                             "base_url": "https://api.example.com",
                             "credential_fields": ["api_key"], "placements": []})
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["field"] == "placements"
    assert "a header, a query parameter or Basic auth" in error["message"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"key": "renamed"}, "key", "cannot be changed"),
        ({"key": "renamed", "name": "Renamed"}, "key", "cannot be changed"),
        ({}, "body", "base_url"),
        ({"nonsense": 1}, "body", "allowed_hosts"),
    ],
)
def test_an_edit_that_changes_nothing_it_can_is_a_400_saying_what_can(
    admin: FlaskClient, body: dict[str, Any], field: str, words: str
) -> None:
    assert _create(admin, KEYED).status_code == 201
    answer = _patch(admin, "keyed", body)
    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    assert error["field"] == field and words in error["message"], error
    stored = admin.get("/api/f/lab/integrations/keyed").get_json()
    assert (stored["key"], stored["name"]) == ("keyed", "Keyed")


@pytest.mark.parametrize(
    ("base", "field", "url"),
    [
        (KEYED, "base_url", "https://169.254.169.254/latest"),
        (KEYED, "base_url", "http://[fe80::1]/api"),
        (KEYED, "base_url", "https://metadata.google.internal/v1"),
        (OAUTH, "token_url", "https://169.254.169.254/token"),
        (OAUTH, "revoke_url", "https://100.100.100.200/revoke"),
    ],
)
def test_a_url_no_call_could_reach_is_refused_when_saved(
    admin: FlaskClient, base: dict[str, Any], field: str, url: str
) -> None:
    answer = _create(admin, {**base, field: url})
    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    assert error["field"] == field and "never sends to" in error["message"], error
    assert _create(admin, base).status_code == 201
    edited = _patch(admin, base["key"], {field: url})
    assert edited.status_code == 400, edited.get_json()
    assert edited.get_json()["error"]["field"] == field


def test_a_private_address_is_still_saved_for_the_operator_to_allow(admin: FlaskClient) -> None:
    # Whether a call may reach it is PRIVATE_NETWORK_ALLOW's say, at call time, as before.
    answer = _create(admin, {**KEYED, "base_url": "http://10.1.2.3:8080/api"})
    assert answer.status_code == 201, answer.get_json()


def test_the_management_list_says_which_integrations_are_switched_off(
    admin: FlaskClient,
) -> None:
    """Switched off on its page, an integration looked the same as the others in the list
    on Management: an admin looking for why calls fail could not tell."""
    for key in ("stripe", "openai"):
        assert _create(admin, {"catalog_key": key}).status_code == 201
    assert admin.post("/api/f/lab/integrations/stripe/disable", headers=HEADERS).status_code == 200
    page = admin.get("/f/lab/manage").get_data(as_text=True)
    rows = {
        key: page.split(f'<tr data-key="{key}">')[1].split("</tr>")[0]
        for key in ("stripe", "openai")
    }
    assert '<span class="badge warn"' in rows["stripe"] and ">off</span>" in rows["stripe"]
    assert ">off</span>" not in rows["openai"]


def test_the_auth_mode_cannot_be_changed(admin: FlaskClient) -> None:
    """The settings page says the sign-in mode is fixed, but the API changed it: an API-key
    integration with a master account became "none", the account still shown connected."""
    assert _create(admin, {"catalog_key": "stripe"}).status_code == 201
    changed = _patch(admin, "stripe", {"auth_mode": "none", "placements": []})
    assert changed.status_code == 400, changed.get_json()
    assert changed.get_json()["error"]["field"] == "auth_mode"
    assert changed.get_json()["error"]["message"] == (
        "auth_mode: an integration's sign-in mode cannot be changed (its accounts sign in "
        "with api_key); add a new integration with the other mode instead"
    )
    listed = admin.get("/api/f/lab/integrations").get_json()
    assert [i["auth_mode"] for i in listed if i["key"] == "stripe"] == ["api_key"]
    same = _patch(admin, "stripe", {"auth_mode": "api_key", "name": "Payments"})
    assert same.status_code == 200, same.get_json()


def test_pages_name_sign_in_modes_in_words_not_codes(admin: FlaskClient) -> None:
    """The Management list said `api_key` and `oauth2_client_credentials` where the form
    that made them says "API key" and "OAuth2 client credentials"."""
    assert _create(admin, {"catalog_key": "stripe"}).status_code == 201
    page = admin.get("/f/lab/manage").get_data(as_text=True)
    row = page.split('<tr data-key="stripe">')[1].split("</tr>")[0]
    assert '<td data-label="Sign-in">API key</td>' in row
    catalog = admin.get("/f/lab/manage/integrations/new").get_data(as_text=True)
    assert '<option value="oauth2_client_credentials">OAuth2 client credentials</option>' in (
        catalog)
    assert '<span class="muted">OAuth2 authorization code</span>' in catalog  # GitHub's entry
    settings = admin.get("/f/lab/manage/integrations/stripe").get_data(as_text=True)
    assert "Sign-in: API key <code>api_key</code>" in settings


def test_only_an_authorization_code_integration_shows_a_redirect_uri(admin: FlaskClient) -> None:
    """Client credentials send nobody to the provider, yet the page said to register a
    redirect URI for them."""
    shown = {}
    for key, mode in (("code", "oauth2"), ("machine", "oauth2_client_credentials")):
        body = {**OAUTH, "key": key, "auth_mode": mode}
        if mode != "oauth2":
            del body["authorization_url"]
        made = _create(admin, body)
        assert made.status_code == 201, made.get_json()
        page = admin.get(f"/f/lab/manage/integrations/{key}").get_data(as_text=True)
        shown[mode] = 'id="redirect-uri"' in page
    assert shown == {"oauth2": True, "oauth2_client_credentials": False}


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_an_empty_name_and_base_url_are_asked_for_by_name_on_create_and_edit(
    admin: FlaskClient, blank: Any
) -> None:
    """They said "name: is required" (a page: "This field is required"), while an empty key
    said what a key is and what it is for; a blank field is asked for alike on either form."""
    made = _create(admin, {**KEYED, "name": blank, "base_url": blank})
    assert made.status_code == 400, made.get_json()
    problems = {p["field"]: p["message"] for p in made.get_json()["error"]["errors"]}
    assert problems == {"name": NAME_ASKED, "base_url": BASE_URL_ASKED}
    assert _create(admin, KEYED).status_code == 201
    edited = _patch(admin, "keyed", {"name": blank, "base_url": blank})
    assert edited.status_code == 400, edited.get_json()
    problems = {p["field"]: p["message"] for p in edited.get_json()["error"]["errors"]}
    assert problems == {"name": NAME_ASKED, "base_url": BASE_URL_ASKED}


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_empty_oauth_urls_and_client_id_are_asked_for_by_name_on_create_and_edit(
    admin: FlaskClient, blank: Any
) -> None:
    """An empty token or authorization URL said the catalog's "token_url: required for OAuth2
    authorization code sign-in (auth_mode oauth2)", and an empty client id its own words:
    each is now asked for from EMPTY_FIELDS, as the name and base URL are."""
    oauth_urls = {"authorization_url": blank, "token_url": blank}
    made = _create(admin, {**OAUTH, **oauth_urls, "client_id": blank})
    assert made.status_code == 400, made.get_json()
    problems = {p["field"]: p["message"] for p in made.get_json()["error"]["errors"]}
    assert problems == {
        "authorization_url": AUTHORIZATION_URL_ASKED,
        "token_url": TOKEN_URL_ASKED,
        "client_id": CLIENT_ID_ASKED,
    }
    assert _create(admin, OAUTH).status_code == 201
    edited = _patch(admin, "oauthed", oauth_urls)
    assert edited.status_code == 400, edited.get_json()
    problems = {p["field"]: p["message"] for p in edited.get_json()["error"]["errors"]}
    assert problems == {"authorization_url": AUTHORIZATION_URL_ASKED, "token_url": TOKEN_URL_ASKED}
    # Client credentials need a token URL too (and no authorization URL).
    machine = {**OAUTH, "key": "machine", "auth_mode": "oauth2_client_credentials",
               "authorization_url": None, "token_url": blank}
    made = _create(admin, machine)
    assert made.status_code == 400, made.get_json()
    error = made.get_json()["error"]
    assert (error["field"], error["message"]) == ("token_url", TOKEN_URL_ASKED)


def test_a_catalog_entry_added_without_a_client_id_is_asked_for_one(admin: FlaskClient) -> None:
    """The catalog's Add form asks for the client id in the same words as the custom form."""
    oauth_entry = next(entry for entry in CATALOG if entry.auth_mode == "oauth2")
    answer = _create(admin, {"catalog_key": oauth_entry.key, "client_id": "  "})
    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    assert (error["field"], error["message"]) == ("client_id", CLIENT_ID_ASKED)

CLIENT_SECRET_ASKED = (
    "give the client secret the provider issued with the client id: client credentials have"
    " no person to sign in, the id and the secret are the whole sign-in"
)


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_client_credentials_without_a_client_secret_are_asked_for_it(
    admin: FlaskClient, blank: Any
) -> None:
    """An empty secret saved a public client, and client credentials then asked the token
    URL for a token with the client id alone: every call failed (invalid_client) where the
    form could have said so. An authorization-code client may still be public."""
    machine = {**OAUTH, "key": "machine", "auth_mode": "oauth2_client_credentials",
               "authorization_url": None, "client_secret": blank}
    paypal = {"catalog_key": "paypal", "client_id": "the-client", "client_secret": blank}
    for body in (machine, paypal):
        made = _create(admin, body)
        assert made.status_code == 400, made.get_json()
        error = made.get_json()["error"]
        assert (error["field"], error["message"]) == ("client_secret", CLIENT_SECRET_ASKED)
    assert "machine" not in admin.get("/api/f/lab/integrations").get_data(as_text=True)
    assert _create(admin, {**machine, "client_secret": "the-secret"}).status_code == 201
    assert _create(admin, {**OAUTH, "client_secret": blank}).status_code == 201
    page = admin.get("/f/lab/manage/integrations/new").get_data(as_text=True)
    form = page.split('data-catalog-key="paypal"')[1].split("</form>")[0]
    assert "required: with client credentials, the id and the secret are the whole" in form


@pytest.mark.parametrize("key", [None, "", "  "])
def test_a_catalog_entry_added_with_no_key_takes_the_entrys_own(
    admin: FlaskClient, key: str | None
) -> None:
    """The Add form shows the entry's key as the default of an empty Key: a blank one was
    refused as empty ("give the integration a key") while a missing one took the default."""
    body: dict[str, Any] = {"catalog_key": "stripe"}
    if key is not None:
        body["key"] = key
    answer = _create(admin, body)
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["key"] == "stripe"
    assert admin.get("/api/f/lab/integrations/stripe").status_code == 200


@pytest.mark.parametrize("secret", [None, ""])
def test_a_catalog_oauth_entry_added_without_a_secret_is_a_public_client(
    admin: FlaskClient, secret: str | None
) -> None:
    """A public client (PKCE, no secret issued) is supported, and the Add form says a blank
    secret means one: it is saved with its client id and no secret."""
    oauth_entry = next(entry for entry in CATALOG if entry.auth_mode == "oauth2")
    body: dict[str, Any] = {"catalog_key": oauth_entry.key, "client_id": "public-id"}
    if secret is not None:
        body["client_secret"] = secret
    answer = _create(admin, body)
    assert answer.status_code == 201, answer.get_json()
    made = answer.get_json()
    assert (made["client_id"], made["has_client_secret"]) == ("public-id", False)


def test_an_empty_key_is_asked_for_not_called_malformed(admin: FlaskClient) -> None:
    """An empty key was told it "must be letters and digits", as if what was typed were wrong."""
    answer = _create(admin, {**KEYED, "key": "  "})
    assert answer.status_code == 400
    assert answer.get_json()["error"] == {
        "code": "invalid_input", "field": "key",
        "message": "give the integration a key (letters and digits, starting with a letter):"
                   " scripts name it in their calls"}
