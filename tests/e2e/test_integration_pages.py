"""Management pages in a real browser: catalog entries of every auth mode can be added and
edited, errors land under the field they name, and the forms state the length limits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import request
from sqlalchemy.orm import Session

from app import db, extensions
from app.devprovider import ProviderConfig, create_provider_app, serve_in_thread
from app.integrations.catalog import load_catalog
from app.integrations.catalog_entry import MAX_KEY_LENGTH, MAX_NAME_LENGTH
from app.integrations.defaults import defaults_of
from app.models import Account, Facility, Integration, OAuthClient, Role, Script
from app.services import connections, integrations_admin
from app.services.integration_fields import EMPTY_FIELDS
from app.testing import LiveServer
from tests.conftest import (
    add_member,
    create_facility,
    create_integration,
    create_user,
    keyed_api_fields,
)
from tests.e2e.conftest import shot
from tests.e2e.people import admin_of_lab, lab_oauth_provider, signed_in
from tests.e2e.test_grant_journeys import run_result, run_script

pytestmark = pytest.mark.browser


@pytest.fixture
def admin_page(browser: Any, live: LiveServer) -> Iterator[Any]:
    """A browser page signed in as an admin of facility `lab`."""
    page = admin_of_lab(browser, live)
    yield page
    page.context.close()


def _stored_name(live: LiveServer, key: str) -> str:
    with live.app.app_context():
        integration = db.session.query(Integration).filter_by(key=key).one()
        name = integration.name
        db.session.remove()
        return name


@pytest.mark.parametrize("catalog_key", ["stripe", "twilio", "datadog"])
def test_an_admin_adds_and_edits_a_key_catalog_entry(
    admin_page: Any, live: LiveServer, catalog_key: str
) -> None:
    page = admin_page
    page.goto(f"{live.url}/f/lab/manage/integrations/new")
    entry = page.locator(f".catalog-entry[data-key={catalog_key}]")
    entry.locator("summary").click()
    entry.locator("button[type=submit]").click()
    page.wait_for_url(f"**/manage/integrations/{catalog_key}")
    settings = page.locator("#integration-settings")
    settings.locator("[name=name]").fill("Payments (lab)")
    settings.locator("button[type=submit]").click()
    settings.locator(".form-ok").wait_for(state="visible")
    assert settings.locator(".form-error").is_hidden()
    assert _stored_name(live, catalog_key) == "Payments (lab)"
    shot(page, f"management-{catalog_key}-edited")


# What an empty Name and Base URL say under them, on the create and the Settings form alike
# (the server's words, pinned in tests/app/web/test_integration_settings.py).
NAME_ASKED = EMPTY_FIELDS["name"]
BASE_URL_ASKED = EMPTY_FIELDS["base_url"]


def new_keyed_form(page: Any, live: LiveServer) -> Any:
    """The new custom integration form with a good key, name, auth mode and base URL."""
    page.goto(f"{live.url}/f/lab/manage/integrations/new")
    form = page.locator("#custom-integration-form")
    form.locator("[name=key]").fill("keyed")
    form.locator("[name=name]").fill("Keyed")
    form.locator("[name=auth_mode]").select_option("api_key")
    form.locator("[name=base_url]").fill("https://api.example.com/v1")
    return form


def test_malformed_placements_show_under_their_field(admin_page: Any, live: LiveServer) -> None:
    page = admin_page
    form = new_keyed_form(page, live)
    # Valid JSON of the wrong shape: an object where a list of placements belongs.
    form.locator("[name=placements]").fill('{"location": "header", "name": "X-Key"}')
    form.locator("button[type=submit]").click()
    slot = form.locator('.field-error[data-for="placements"]')
    slot.wait_for(state="visible")
    page.wait_for_function(
        "() => document.querySelector('.field-error[data-for=placements]').textContent !== ''"
    )
    assert slot.inner_text() == "Input should be a valid list"  # under placements
    assert form.locator(".form-error").is_hidden()
    shot(page, "management-new-placements-error")


def test_every_wrong_field_of_the_custom_form_shows_after_one_submit(
    admin_page: Any, live: LiveServer
) -> None:
    page = admin_page
    page.goto(f"{live.url}/f/lab/manage/integrations/new")
    form = page.locator("#custom-integration-form")
    form.locator("[name=key]").fill("9lives")  # a key must start with a letter
    form.locator("[name=auth_mode]").select_option("api_key")
    form.locator("[name=base_url]").fill("http://api.example.com/v1")  # not https
    # no name, and no placement for the key
    form.locator("button[type=submit]").click()
    page.wait_for_function(
        "() => ['key', 'name', 'base_url', 'placements'].every(field => document.querySelector("
        "`#custom-integration-form .field-error[data-for=${field}]`).textContent !== '')"
    )

    def slot(field: str) -> str:
        return str(form.locator(f'.field-error[data-for="{field}"]').inner_text())

    assert slot("key") == "the key must be letters and digits, starting with a letter"
    # Under its field a message does not name the field again (the API's does).
    assert slot("name") == NAME_ASKED
    assert slot("base_url") == "Must be an https URL"
    assert slot("placements").startswith("Say where the credential goes")
    assert form.locator(".form-error").is_hidden()
    shot(page, "management-new-several-errors")


def test_text_that_is_not_json_is_named_in_every_field_it_is_in(
    admin_page: Any, live: LiveServer
) -> None:
    page = admin_page
    form = new_keyed_form(page, live)
    form.locator("[name=parameters]").fill("[{not json")
    form.locator("[name=default_headers]").fill("Accept: text/plain")
    form.locator("button[type=submit]").click()
    headers = form.locator('.field-error[data-for="default_headers"]')
    headers.wait_for(state="visible")
    page.wait_for_function(
        "() => document.querySelector('.field-error[data-for=default_headers]').textContent"
        " !== ''"
    )
    assert headers.inner_text() == "This field is not valid JSON"
    assert form.locator('.field-error[data-for="parameters"]').inner_text() == (
        "This field is not valid JSON"
    )
    assert page.url.endswith("/manage/integrations/new")


def test_a_malformed_url_on_the_settings_form_shows_under_base_url(
    admin_page: Any, live: LiveServer
) -> None:
    page = admin_page
    page.goto(f"{live.url}/f/lab/manage/integrations/new")
    entry = page.locator(".catalog-entry[data-key=openai]")
    entry.locator("summary").click()
    entry.locator("button[type=submit]").click()
    page.wait_for_url("**/manage/integrations/openai")
    settings = page.locator("#integration-settings")
    settings.locator("[name=base_url]").fill("https://[api.openai.com/v1")
    settings.locator("button[type=submit]").click()
    page.wait_for_function(
        "() => document.querySelector('#integration-settings .field-error[data-for=base_url]')"
        ".textContent !== ''"
    )
    assert settings.locator(".form-error").is_hidden()
    assert settings.locator(".form-ok").is_hidden()


def test_empty_name_and_base_url_are_asked_for_under_them_on_the_settings_form(
    admin_page: Any, live: LiveServer
) -> None:
    """The Settings form left them to the browser's "Please fill out this field", one field
    at a time and in the browser's words; the page now says what each needs, as the
    new-integration form does (`required` stays: it still marks them as needed)."""
    page = admin_page
    page.goto(f"{live.url}/f/lab/manage/integrations/new")
    entry = page.locator(".catalog-entry[data-key=openai]")
    entry.locator("summary").click()
    entry.locator("button[type=submit]").click()
    page.wait_for_url("**/manage/integrations/openai")
    settings = page.locator("#integration-settings")
    assert settings.locator("[name=name]").get_attribute("required") is not None
    settings.locator("[name=name]").fill("")
    settings.locator("[name=base_url]").fill("  ")
    settings.locator("button[type=submit]").click()
    page.wait_for_function(
        "() => ['name', 'base_url'].every(field => document.querySelector("
        "`#integration-settings .field-error[data-for=${field}]`).textContent !== '')"
    )

    def slot(field: str) -> str:
        return str(settings.locator(f'.field-error[data-for="{field}"]').inner_text())

    assert (slot("name"), slot("base_url")) == (NAME_ASKED, BASE_URL_ASKED)
    assert settings.locator(".form-ok").is_hidden()
    assert _stored_name(live, "openai") == "OpenAI"
    shot(page, "management-settings-empty-fields")


# What the OAuth fields an auth mode needs say under them when empty.
OAUTH_ASKED = {f: EMPTY_FIELDS[f] for f in ("authorization_url", "token_url", "client_id")}


def test_empty_oauth_fields_are_asked_for_under_them_on_the_custom_form(
    admin_page: Any, live: LiveServer
) -> None:
    """An empty token URL said the catalog's "required for OAuth2 authorization code sign-in
    (auth_mode oauth2)" and hid that the authorization URL was missing too: each says what
    to put there, all after one submit."""
    page = admin_page
    form = new_keyed_form(page, live)
    form.locator("[name=auth_mode]").select_option("oauth2")
    form.locator("button[type=submit]").click()
    page.wait_for_function(
        "() => ['authorization_url', 'token_url', 'client_id'].every(field => document"
        ".querySelector(`#custom-integration-form .field-error[data-for=${field}]`)"
        ".textContent !== '')"
    )
    shown = {
        field: form.locator(f'.field-error[data-for="{field}"]').inner_text()
        for field in OAUTH_ASKED
    }
    assert shown == OAUTH_ASKED
    assert form.locator(".form-error").is_hidden()
    shot(page, "management-new-oauth-fields-asked")


def test_the_forms_state_and_enforce_the_length_limits(admin_page: Any, live: LiveServer) -> None:
    page = admin_page
    page.goto(f"{live.url}/f/lab/manage/integrations/new")
    form = page.locator("#custom-integration-form")
    assert f"up to {MAX_KEY_LENGTH} characters" in form.inner_text()
    assert f"up to {MAX_NAME_LENGTH} characters" in form.inner_text()
    form.locator("[name=key]").fill("k" * 5000)
    form.locator("[name=name]").fill("n" * 5000)
    assert len(form.locator("[name=key]").input_value()) == MAX_KEY_LENGTH
    assert len(form.locator("[name=name]").input_value()) == MAX_NAME_LENGTH
    form.locator("[name=auth_mode]").select_option("basic")
    form.locator("[name=base_url]").fill("https://api.example.com")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/manage/integrations/k*")
    page.goto(f"{live.url}/f/lab/manage")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 1280


@pytest.fixture
def keyed_provider(live: LiveServer) -> Iterator[str]:
    """The dev provider on loopback, accepting one API key."""
    provider_app = create_provider_app(ProviderConfig(api_keys={"right-key-81": None}))
    with serve_in_thread(provider_app) as provider:
        yield provider.url


def test_a_wrong_master_key_is_refused_and_test_connection_says_why(
    admin_page: Any, live: LiveServer, keyed_provider: str
) -> None:
    with live.app.app_context():
        session = db.session()
        lab = session.query(Facility).filter_by(slug="lab").one()
        integrations_admin.create_custom(
            session,
            facility=lab,
            fields=keyed_api_fields(
                keyed_provider, verify={"method": "GET", "path": "/me", "expected_status": 200}
            ),
        )
        session.commit()
        db.session.remove()
    page = admin_page
    page.goto(f"{live.url}/f/lab/manage/integrations/keyed")
    test_form = page.locator("#test-credentials")
    test_form.locator("[name=api_key]").fill("wrong-key-12")
    test_form.locator("button[type=submit]").click()
    result = page.locator("#test-result")
    page.wait_for_function("() => document.querySelector('#test-result').className === 'error'")
    assert "HTTP 401" in result.inner_text() and "Unknown API key" in result.inner_text()

    master = page.locator("#master-credentials")
    master.locator("[name=api_key]").fill("wrong-key-12")
    master.locator("button[type=submit]").click()
    slot = master.locator('.field-error[data-for="api_key"]')
    slot.wait_for(state="attached")
    page.wait_for_function(
        "() => document.querySelector('#master-credentials .field-error').textContent !== ''"
    )
    assert "HTTP 401" in slot.inner_text()
    shot(page, "management-master-key-refused")
    master.locator("[name=api_key]").fill("right-key-81")
    master.locator("button[type=submit]").click()
    page.locator("#disconnect-master").wait_for()
    test_form = page.locator("#test-credentials")
    test_form.locator("button[type=submit]").click()
    page.wait_for_function("() => document.querySelector('#test-result').className === 'ok'")
    assert "master account" in page.locator("#test-result").inner_text()


def test_empty_master_fields_are_refused_under_each_field_by_the_server(
    admin_page: Any, live: LiveServer
) -> None:
    """The master form left empty fields to the browser's "Please fill out this field"; the
    server's words now show under the field they name, a key, a secret and a parameter alike
    (`required` stays: it still marks them as needed), every empty one at once (they came
    one per submit)."""
    with live.app.app_context():
        session = db.session()
        lab = session.query(Facility).filter_by(slug="lab").one()
        integrations_admin.create_custom(session, facility=lab, fields={
            "key": "paired", "name": "Paired API", "auth_mode": "api_key_secret",
            "base_url": "https://api.example.com/{region}",
            "credential_fields": ["api_key", "api_secret"],
            "parameters": [{"name": "region", "label": "Region"}],
            "placements": [
                {"location": "header", "name": "X-Key", "template": "{api_key}"},
                {"location": "header", "name": "X-Secret", "template": "{api_secret}"},
            ],
        })
        session.commit()
        db.session.remove()
    page = admin_page
    page.goto(f"{live.url}/f/lab/manage/integrations/paired")
    form = page.locator("#master-credentials")
    assert form.locator("[name=api_key]").get_attribute("required") is not None

    def refused(expected: dict[str, str]) -> None:
        """Submit; the fields' messages shown become `expected` (each step's differ from the
        last, so the wait cannot end on the messages of the submit before)."""
        form.locator("button[type=submit]").click()
        try:
            page.wait_for_function(
                """expected => {
                  const shown = {};
                  for (const slot of document.querySelectorAll("#master-credentials .field-error"))
                    if (slot.textContent) shown[slot.dataset.for] = slot.textContent;
                  return JSON.stringify(Object.entries(shown).sort())
                    === JSON.stringify(Object.entries(expected).sort());
                }""", arg=expected)
        finally:
            shown = {
                str(slot.get_attribute("data-for")): slot.inner_text()
                for slot in form.locator(".field-error").all() if slot.inner_text()
            }
            assert shown == expected

    refused({"api_key": "enter the api key", "api_secret": "enter the api secret",
             "param_region": "enter Region"})
    form.locator("[name=api_key]").fill("the-key")
    refused({"api_secret": "enter the api secret", "param_region": "enter Region"})
    shot(page, "management-master-empty-secret")
    form.locator("[name=api_secret]").fill("the-secret")
    refused({"param_region": "enter Region"})
    with live.app.app_context():
        assert db.session.query(Account).count() == 0
        db.session.remove()
    form.locator("[name=param_region]").fill("eu")
    form.locator("button[type=submit]").click()
    page.locator("#disconnect-master").wait_for()


SENDS_WITH_MASTER = 'result = integrations.get("keyed", "/echo", account="master").status\n'


def _recording_keys(provider_app: Any) -> list[str]:
    """The X-API-Key of each call to the provider's /keyapi/echo, in order (a run's result
    cannot show it: the broker redacts the key out of what the script reads)."""
    sent: list[str] = []

    @provider_app.before_request
    def record() -> None:
        if request.path == "/keyapi/echo":
            sent.append(request.headers.get("X-API-Key", ""))

    return sent


def _master_as_stored(live: LiveServer) -> tuple[int, int, dict[str, str]]:
    """The master account's id, version and (decrypted) credentials."""
    with live.app.app_context():
        account = db.session.query(Account).filter_by(owner_kind="master").one()
        stored = (account.id, account.version,
                  extensions.vault().decrypt_json(account.credentials_enc))
        db.session.remove()
        return stored


def test_an_admin_replaces_the_master_key_without_disconnecting(
    admin_page: Any, live: LiveServer
) -> None:
    """A rotated key replaces the active master's in place: a refused one is said on the form
    and the old key stays in use; an accepted one keeps the account, one version on."""
    provider_app = create_provider_app(
        ProviderConfig(api_keys={"old-key-11": None, "new-key-22": None}))
    sent = _recording_keys(provider_app)
    with serve_in_thread(provider_app) as provider:
        with live.app.app_context():
            session = db.session()
            lab = session.query(Facility).filter_by(slug="lab").one()
            integration = integrations_admin.create_custom(
                session, facility=lab, fields=keyed_api_fields(
                    provider.url, verify={"method": "GET", "path": "/me", "expected_status": 200}))
            connections.connect_with_credentials(
                session, integration=integration, owner="master", user_id=None, label="",
                fields={"api_key": "old-key-11"}, parameters={}, vault=extensions.vault(),
                http=extensions.outbound())
            session.add(Script(facility_id=lab.id, name="Sends the key", source=SENDS_WITH_MASTER,
                               published=True))
            session.commit()
            db.session.remove()
        account_id, version, credentials = _master_as_stored(live)
        page = admin_page
        page.goto(f"{live.url}/f/lab/manage/integrations/keyed")
        replace = page.locator("details.replace-master")
        form = replace.locator("#master-credentials")
        assert not form.is_visible()  # folded under its summary, beside Disconnect
        assert page.locator("#disconnect-master").is_visible()
        replace.locator("summary", has_text="Replace credentials").click()
        assert "stay in use until the new ones are accepted" in replace.inner_text()

        form.locator("[name=api_key]").fill("wrong-key-33")
        form.locator("button[type=submit]", has_text="Replace").click()
        page.wait_for_function(
            "() => document.querySelector('#master-credentials .field-error')?.textContent")
        assert "HTTP 401" in form.locator('.field-error[data-for="api_key"]').inner_text()
        shot(page, "management-master-replace-refused")
        assert _master_as_stored(live) == (account_id, version, credentials)
        assert run_result(run_script(page, live, "Sends the key")) == 200
        assert sent == ["old-key-11"]

        page.goto(f"{live.url}/f/lab/manage/integrations/keyed")
        replace.locator("summary").click()
        form.locator("[name=api_key]").fill("new-key-22")
        with page.expect_navigation():
            form.locator("button[type=submit]").click()
        said = "The master account's credentials were replaced."
        page.locator(".toast", has_text=said).wait_for()
        shot(page, "management-master-replaced")
        assert "connected" in page.locator(".badge.ok").first.inner_text()
        assert _master_as_stored(live) == (account_id, version + 1, {"api_key": "new-key-22"})
        assert run_result(run_script(page, live, "Sends the key")) == 200
        assert sent == ["old-key-11", "new-key-22"]


def test_a_master_that_must_sign_in_again_is_shown_and_explained(
    browser: Any, admin_page: Any, live: LiveServer, keyed_provider: str
) -> None:
    from app.models import Account, Script
    from app.services import connections

    with live.app.app_context():
        session = db.session()
        lab = session.query(Facility).filter_by(slug="lab").one()
        member = create_user(session, email="member@example.com", name="Mia Member")
        add_member(session, user=member, facility=lab, role=Role.member)
        integration = integrations_admin.create_custom(
            session,
            facility=lab,
            fields={
                "key": "keyed",
                "name": "Keyed API",
                "auth_mode": "api_key",
                "base_url": f"{keyed_provider}/keyapi",
                "placements": [
                    {"location": "header", "name": "X-API-Key", "template": "{api_key}"}
                ],
            },
        )
        connections.connect_with_credentials(
            session,
            integration=integration,
            owner="master",
            user_id=None,
            label="",
            fields={"api_key": "right-key-81"},
            parameters={},
            vault=extensions.vault(),
        )
        session.add(
            Script(
                facility_id=lab.id,
                name="Keyed me",
                source='result = integrations.get("keyed", "/me").json()',
                published=True,
            )
        )
        session.flush()
        session.query(Account).update({"status": "needs_reauth"})
        session.commit()
        db.session.remove()

    page = signed_in(browser, live, "member@example.com", height=800)
    page.goto(f"{live.url}/f/lab/scripts")
    page.locator(".script-card", has_text="Keyed me").locator(".run-script").click()
    prompt = page.locator(".grant-prompt")
    prompt.wait_for(timeout=20000)
    assert "must be signed in again by an admin" in prompt.inner_text()
    shot(page, "scripts-prompt-master-needs-reauth")
    prompt.locator(".grant-refuse").click()
    page.context.close()

    admin = admin_page
    admin.goto(f"{live.url}/f/lab/manage")
    state = admin.locator("tr", has_text="Keyed API").locator(".master-state")
    assert "must sign in again" in state.inner_text()
    shot(admin, "management-master-needs-reauth")
    state.locator("a", has_text="Reconnect").click()
    admin.wait_for_url("**/manage/integrations/keyed")
    form = admin.locator("#master-credentials")
    form.locator("[name=api_key]").fill("right-key-81")
    form.locator("button[type=submit]", has_text="Reconnect").click()
    admin.locator(".master-stale").wait_for(state="detached")  # the page reloaded
    admin.goto(f"{live.url}/f/lab/manage")
    state = admin.locator("tr", has_text="Keyed API").locator(".master-state")
    assert state.inner_text().strip() == "connected"


def test_a_failed_revocation_offers_retry_or_remove_anyway(
    browser: Any, admin_page: Any, live: LiveServer
) -> None:
    from app.models import Account

    with live.app.app_context():
        session = db.session()
        lab = session.query(Facility).filter_by(slug="lab").one()
        member = create_user(session, email="member@example.com", name="Mia Member")
        add_member(session, user=member, facility=lab, role=Role.member)
        integration = integrations_admin.create_custom(
            session,
            facility=lab,
            fields={
                "key": "demo",
                "name": "Demo OAuth",
                "auth_mode": "oauth2",
                "base_url": "http://127.0.0.1:9/api",
                "authorization_url": "http://127.0.0.1:9/authorize",
                "token_url": "http://127.0.0.1:9/token",
                "revoke_url": "http://127.0.0.1:9/revoke",  # nothing listens there
                "client_id": "the-client",
                "client_secret": "the-secret",
            },
        )
        session.add(
            Account(
                facility_id=lab.id,
                integration_id=integration.id,
                owner_kind="user",
                user_id=member.id,
                label="",
                credentials_enc=extensions.vault().encrypt_json(
                    {"access_token": "at-1", "refresh_token": "rt-1"}
                ),
            )
        )
        session.commit()
        db.session.remove()

    page = signed_in(browser, live, "member@example.com", height=800)
    page.goto(f"{live.url}/settings/integrations")
    row = page.locator(".integration-row[data-key=demo]")
    row.locator(".disconnect").click()
    choice = row.locator(".revocation-failed")
    choice.wait_for()
    assert "could not be reached to revoke the token" in choice.inner_text()
    shot(page, "settings-revocation-failed")
    choice.locator(".revocation-retry").click()  # still unreachable: asked again
    row.locator(".revocation-failed").wait_for()
    row.locator(".revocation-remove-anyway").click()
    page.wait_for_function("() => !document.querySelector('.integration-row .disconnect')")
    assert "Not connected." in page.locator(".integration-row[data-key=demo]").inner_text()
    with live.app.app_context():
        assert db.session.query(Account).count() == 0
        db.session.remove()
    page.context.close()


def _demo_with_master(
    live: LiveServer,
    *,
    credentials: dict[str, str] | None,
    then: Callable[[Session], None] | None = None,
) -> None:
    """Lab's OAuth integration `demo` (client the-client, secret the-secret; its hosts are
    not dialled) with a master account holding `credentials`; `then` adds to the session."""
    from app.models import Account

    with live.app.app_context():
        session = db.session()
        lab = session.query(Facility).filter_by(slug="lab").one()
        integration = integrations_admin.create_custom(
            session,
            facility=lab,
            fields={
                "key": "demo",
                "name": "Demo OAuth",
                "auth_mode": "oauth2",
                "base_url": "https://api.example.com",
                "authorization_url": "https://example.com/authorize",
                "token_url": "https://example.com/token",
                "client_id": "the-client",
                "client_secret": "the-secret",
            },
        )
        sealed = None if credentials is None else extensions.vault().encrypt_json(credentials)
        session.add(
            Account(
                facility_id=lab.id,
                integration_id=integration.id,
                owner_kind="master",
                oauth_client_id=integration.current_client_id,
                credentials_enc=sealed,
            )
        )
        if then is not None:
            then(session)
        session.commit()
        db.session.remove()


def test_a_refused_oauth_client_shows_on_management_and_its_page(
    admin_page: Any, live: LiveServer
) -> None:
    from app.models import OAuthClient
    from app.models._types import utcnow

    def refused(session: Session) -> None:
        # What the token manager records when a refresh is answered invalid_client.
        client = session.query(OAuthClient).one()
        client.rejected_with, client.rejected_at = "invalid_client", utcnow()

    _demo_with_master(live, credentials=None, then=refused)
    page = admin_page
    page.goto(f"{live.url}/f/lab/manage")
    problem = page.locator("tr", has_text="Demo OAuth").locator(".client-problem")
    assert "refused the OAuth client the-client (invalid_client)" in problem.inner_text()
    shot(page, "management-client-refused")
    page.goto(f"{live.url}/f/lab/manage/integrations/demo")
    assert "saves the current client secret" in page.locator(".client-problem").inner_text()
    settings = page.locator("#integration-settings")
    settings.locator("[name=client_secret]").fill("the-new-secret")
    settings.locator("button[type=submit]").click()
    settings.locator(".form-ok").wait_for(state="visible")
    page.reload()
    assert page.locator(".client-problem").count() == 0


def test_moving_the_token_url_asks_for_the_secret_and_says_who_must_connect_again(
    admin_page: Any, live: LiveServer
) -> None:
    _demo_with_master(live, credentials={"access_token": "a"})
    page = admin_page
    page.goto(f"{live.url}/f/lab/manage/integrations/demo")
    settings = page.locator("#integration-settings")
    settings.locator("[name=token_url]").fill("https://elsewhere.example.com/token")
    settings.locator("button[type=submit]").click()
    beside = settings.locator(".field-error[data-for=client_secret]")
    beside.wait_for(state="visible")
    assert beside.inner_text() == (
        "The client secret would now be sent to https://elsewhere.example.com: enter it "
        "again to send it there"
    )
    settings.locator("[name=client_secret]").fill("the-secret")
    settings.locator("button[type=submit]").click()
    saved = settings.locator(".form-ok")
    saved.wait_for(state="visible")
    assert saved.inner_text() == (
        "Saved. 1 connected account(s) must connect again: their credentials were issued "
        "for https://api.example.com, https://example.com, not for "
        "https://elsewhere.example.com."
    )


def test_test_connection_asks_the_oauth_provider_from_the_page(
    admin_page: Any, live: LiveServer
) -> None:
    with lab_oauth_provider(live):
        page = admin_page
        page.goto(f"{live.url}/f/lab/manage/integrations/demo")
        page.click("#test-connection")
        page.wait_for_function(
            "() => ['ok', 'error'].includes(document.querySelector('#test-result').className)")
        result = page.locator("#test-result")
        assert result.get_attribute("class") == "ok", result.inner_text()
        assert "client id and secret accepted" in result.inner_text()


def _stored_settings(live: LiveServer, key: str) -> dict[str, Any]:
    with live.app.app_context():
        integration = db.session.query(Integration).filter_by(key=key).one()
        headers, query = defaults_of(integration, extensions.vault())
        stored = {
            "placements": integration.placements,
            "verify": integration.verify,
            "default_headers": headers,
            "default_query": query,
        }
        db.session.remove()
        return stored


def created_keyed_integration(page: Any, live: LiveServer, provider_url: str) -> Any:
    """A custom API-key integration `keyed` made on the new-integration form, its key sent
    in a mistyped header; its Settings form."""
    form = new_keyed_form(page, live)
    form.locator("[name=base_url]").fill(f"{provider_url}/keyapi")
    form.locator("[name=placements]").fill(
        '[{"location": "header", "name": "X-API-Kye", "template": "{api_key}"}]'
    )
    form.locator("[name=default_headers]").fill('{"Accept": "text/plain"}')
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/manage/integrations/keyed")
    return page.locator("#integration-settings")


def test_a_custom_integration_is_fixed_on_its_settings_form(
    admin_page: Any, live: LiveServer, keyed_provider: str
) -> None:
    page = admin_page
    settings = created_keyed_integration(page, live, keyed_provider)
    assert "declares no verification request" in page.locator("#integration-page").inner_text()
    placements = settings.locator("[name=placements]")
    assert "X-API-Kye" in placements.input_value()  # the current value, to correct
    assert "Accept: ••••••" in settings.inner_text()  # default values stay write-only
    placements.fill('[{"location": "header", "name": "X-API-Key", "template": "{api_key}"}]')
    settings.locator("[name=default_headers]").fill('{"Accept": "application/json"}')
    settings.locator("[name=verify]").fill('{"method": "GET", "path": "/me"}')
    with page.expect_navigation():  # the test form follows the new verify request
        settings.locator("button[type=submit]").click()
    assert _stored_settings(live, "keyed") == {
        "placements": [
            {
                "location": "header",
                "name": "X-API-Key",
                "template": "{api_key}",
                "password_template": None,
            }
        ],
        "verify": {"method": "GET", "path": "/me", "expected_status": 200},
        "default_headers": {"Accept": "application/json"},
        "default_query": {},
    }
    test_form = page.locator("#test-credentials")
    assert "GET /me" in test_form.inner_text()
    assert '"path": "/me"' in page.locator("#integration-settings [name=verify]").input_value()
    shot(page, "management-custom-integration-fixed")
    # The corrected placement sends the key where the provider looks for it.
    test_form.locator("[name=api_key]").fill("right-key-81")
    test_form.locator("button[type=submit]").click()
    page.wait_for_function(
        "() => ['ok', 'error'].includes(document.querySelector('#test-result').className)"
    )
    assert page.locator("#test-result").get_attribute("class") == "ok", page.locator(
        "#test-result"
    ).inner_text()


def test_a_wrong_value_on_the_settings_form_shows_under_its_field(
    admin_page: Any, live: LiveServer, keyed_provider: str
) -> None:
    page = admin_page
    settings = created_keyed_integration(page, live, keyed_provider)
    before = _stored_settings(live, "keyed")
    settings.locator("[name=placements]").fill(
        '[{"location": "body", "name": "X-API-Key", "template": "{api_key}"}]'
    )
    settings.locator("[name=whoami]").fill('{"method": "GET", "path": "/me", "field": ')
    settings.locator("button[type=submit]").click()
    whoami = settings.locator('.field-error[data-for="whoami"]')
    page.wait_for_function(
        "() => document.querySelector('#integration-settings .field-error[data-for=whoami]')"
        ".textContent !== ''"
    )
    assert whoami.inner_text() == "This field is not valid JSON"  # said before sending
    settings.locator("[name=whoami]").fill('{"method": "GET", "path": "/me", "field": "email"}')
    settings.locator("button[type=submit]").click()
    page.wait_for_function(
        "() => document.querySelector('#integration-settings .field-error[data-for=placements]')"
        ".textContent !== ''"
    )
    assert settings.locator('.field-error[data-for="placements"]').inner_text() == (
        "placements[0].location: unknown value 'body'; expected one of header, query, basic"
    )
    assert whoami.inner_text() == ""
    assert settings.locator(".form-error").is_hidden()
    assert settings.locator(".form-ok").is_hidden()
    assert _stored_settings(live, "keyed") == before
    shot(page, "management-settings-placement-error")


def _stored_client(live: LiveServer, key: str) -> tuple[str, bool]:
    """The integration's saved client id, and whether a secret is saved with it."""
    with live.app.app_context():
        integration = db.session.query(Integration).filter_by(key=key).one()
        client = db.session.query(OAuthClient).filter_by(integration_id=integration.id).one()
        stored = (client.client_id, client.client_secret_enc is not None)
        db.session.remove()
        return stored


def test_the_catalog_form_asks_for_an_empty_client_id_and_says_what_empty_key_and_secret_mean(
    admin_page: Any, live: LiveServer
) -> None:
    """The catalog's Add form had `required` and no `novalidate`: the browser's "Please fill
    out this field" stopped an empty client id before the server's words could show, and
    nothing said that an empty Key is the entry's own key or an empty secret a public client.
    Both are what the API does with them, so the form says so and lets them through."""
    page = admin_page
    page.goto(f"{live.url}/f/lab/manage/integrations/new")
    github = page.locator(".catalog-entry[data-key=github]")
    github.locator("summary").click()
    form = github.locator(".catalog-form")
    assert form.locator("[name=key]").get_attribute("placeholder") == "github"
    key_label = form.locator("label", has=page.locator("[name=key]")).inner_text()
    assert "left empty, it is github" in key_label
    secret_label = form.locator("label", has=page.locator("[name=client_secret]")).inner_text()
    assert "leave it empty for a public client" in secret_label
    # An entry that does not sign in with PKCE makes no such promise.
    no_pkce = next(e.key for e in load_catalog().values() if e.auth_mode == "oauth2" and not e.pkce)
    other = page.locator(f".catalog-entry[data-key={no_pkce}] label", has_text="Client secret")
    assert "only if the provider issued none" in other.text_content()
    form.locator("[name=key]").fill("")
    form.locator("button[type=submit]").click()
    asked = form.locator('.field-error[data-for="client_id"]')
    asked.wait_for(state="visible")
    assert asked.inner_text() == EMPTY_FIELDS["client_id"]
    assert form.locator('.field-error[data-for="key"]').inner_text() == ""
    form.locator("[name=client_id]").fill("public-id")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/manage/integrations/github")
    assert _stored_client(live, "github") == ("public-id", False)
    shot(page, "management-catalog-public-client-added")


def test_the_redirect_uri_shows_before_an_oauth_integration_is_added(
    admin_page: Any, live: LiveServer
) -> None:
    """A provider hands out the client id only once the redirect URI is registered there,
    and the catalog form asks for that id: the URI was shown only after the entry was added."""
    page = admin_page
    page.add_init_script("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
    page.goto(f"{live.url}/f/lab/manage/integrations/new")
    expected = f"{live.app.config['PUBLIC_URL'].rstrip('/')}/oauth/callback"
    github = page.locator(".catalog-entry[data-key=github]")
    github.locator("summary").click()
    uri = github.locator(".redirect-uri")
    assert uri.inner_text() == expected
    github.locator(".copy-redirect").click()
    page.locator(".toast", has_text="press Ctrl+C").wait_for()
    assert page.evaluate("getSelection().toString()") == expected
    # A key-only entry has no redirect to register.
    assert page.locator(".catalog-entry[data-key=stripe] .redirect-uri").count() == 0
    custom = page.locator("#custom-integration-form")
    assert custom.locator(".redirect-uri").inner_text() == expected
    assert custom.locator(".redirect-uri").is_visible()  # oauth2, the form's first mode
    custom.locator("[name=auth_mode]").select_option("api_key")
    assert custom.locator(".redirect-uri").is_hidden()
    shot(page, "management-new-redirect-uri")


@pytest.mark.parametrize("mode", ["api_key", "api_key_secret"])
def test_the_placements_example_of_a_key_mode_works_as_typed(
    admin_page: Any, live: LiveServer, mode: str
) -> None:
    """The example under "Where the credential goes" was "Bearer {token}" in every mode: typed
    in for an API key, it sent no key and the form refused it ("'api_key' is declared but
    never sent")."""
    page = admin_page
    form = new_keyed_form(page, live)
    form.locator("[name=auth_mode]").select_option(mode)
    placements = form.locator("[name=placements]")
    placements.fill(placements.get_attribute("placeholder"))
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/manage/integrations/keyed")


def test_disconnecting_from_the_keyboard_comes_back_to_the_integrations_row(
    browser: Any, live: LiveServer
) -> None:
    # Disconnect reloads the page: the focus was lost to the page's top and nothing said
    # the account went.
    from app.models import Account

    with live.app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab", name="The Lab")
        member = create_user(session, email="member@example.com", name="Mia Member")
        add_member(session, user=member, facility=lab, role=Role.member)
        for key in ("first", "keyed"):
            integration = create_integration(session, facility=lab, key=key)
        session.add(Account(
            facility_id=lab.id, integration_id=integration.id, owner_kind="user",
            user_id=member.id, label="",
            credentials_enc=extensions.vault().encrypt_json({"api_key": "k-1"})))
        session.commit()
        db.session.remove()
    page = signed_in(browser, live, "member@example.com")
    page.goto(f"{live.url}/settings/integrations")
    page.focus(".integration-row[data-key=keyed] .disconnect")
    page.keyboard.press("Enter")
    page.locator(".toast", has_text="Your Keyed account is disconnected.").wait_for()
    row = page.locator(".integration-row[data-key=keyed]")
    assert "Not connected." in row.inner_text()
    focused_row = "document.activeElement.closest('.integration-row')?.dataset.key"
    assert page.evaluate(focused_row) == "keyed"
    assert page.evaluate("document.activeElement.name") == "label"  # connect one again
    page.context.close()


def test_a_refused_custom_form_takes_the_keyboard_to_its_first_wrong_field_on_a_phone(
    admin_page: Any, live: LiveServer
) -> None:
    # At 375 px the form is taller than the screen: the problems showed above the button
    # just pressed, out of sight, and nothing marked the fields as wrong for a screen
    # reader, so pressing Create integration looked as if it did nothing.
    page = admin_page
    page.set_viewport_size({"width": 375, "height": 700})
    page.goto(f"{live.url}/f/lab/manage/integrations/new")
    form = page.locator("#custom-integration-form")
    form.locator("[name=key]").fill("9lives")  # a key must start with a letter
    form.locator("[name=auth_mode]").select_option("api_key")
    form.locator("[name=base_url]").fill("http://api.example.com/v1")  # not https
    form.locator("button[type=submit]").focus()
    page.keyboard.press("Enter")
    key = form.locator("[name=key]")
    page.wait_for_function(
        "() => document.activeElement === document.querySelector("
        "'#custom-integration-form [name=key]')"
    )
    assert key.get_attribute("aria-invalid") == "true"
    assert key.evaluate("n => n.getBoundingClientRect().top") >= 0  # scrolled into view
    described = key.evaluate(
        "n => document.getElementById(n.getAttribute('aria-describedby')).textContent"
    )
    assert described == "the key must be letters and digits, starting with a letter"
    assert form.locator("[name=base_url]").get_attribute("aria-invalid") == "true"
    key.fill("lives")
    form.locator("[name=name]").fill("Lives")
    form.locator("[name=base_url]").fill("https://api.example.com/v1")
    form.locator("button[type=submit]").click()
    page.wait_for_function(  # only the placement is wrong now
        "() => document.activeElement === document.querySelector("
        "'#custom-integration-form [name=placements]')"
    )
    assert key.get_attribute("aria-invalid") is None
