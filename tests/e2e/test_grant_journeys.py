"""The grant flow in a real browser (Debian's Chromium via Playwright), DESIGN §4:
(a) an admin creates a custom OAuth integration on the Management page, a member's run
needs it, the prompt appears, Sign in goes through the provider's consent page and the
run resumes; (b) Refuse reaches the script's except branch; (c) with a master account
no prompt appears and the call log says `master`; (d) an API-key integration prompts
with a form."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from app import db, extensions
from app.devprovider import (
    ClientSpec,
    ProviderConfig,
    create_provider_app,
    provider_of,
    serve_in_thread,
)
from app.models import CallLog, Grant, Integration, Role, Script, User
from app.services import connections, integrations_admin
from app.testing import LiveServer
from tests.conftest import add_member, create_facility, create_user, keyed_api_fields
from tests.e2e.conftest import shot
from tests.e2e.people import signed_in

pytestmark = pytest.mark.browser
API_KEY = "e2e-api-key"
CLIENT_SECRET = "e2e-client-secret"

CALLS_OAUTH = """
me = integrations.get("demo", "/me", account="user").json()
print("signed in as", me["username"])
result = me
"""
CATCHES_REFUSAL = """
try:
    integrations.get("keyed", "/echo")
    result = {"connected": True}
except integrations.NoIntegrationGrant as refused:
    print("refused:", refused.reason)
    result = {"connected": False, "reason": refused.reason}
"""
CALLS_KEYED = """
resp = integrations.get("keyed", "/echo")
result = {"status": resp.status}
"""


@pytest.fixture
def site(live: LiveServer) -> Iterator[dict[str, Any]]:
    """Scriptbox and a provider on loopback, a facility with an admin and a member."""
    provider_app = create_provider_app(ProviderConfig(api_keys={API_KEY: None}))
    with serve_in_thread(provider_app) as provider:
        provider_of(provider_app).add_client(
            ClientSpec(
                "scriptbox",
                CLIENT_SECRET,
                [f"{live.url}/oauth/callback"],
                token_endpoint_auth_method="client_secret_basic",
            )
        )
        with live.app.app_context():
            session = db.session()
            lab = create_facility(session, slug="lab", name="The Lab")
            admin = create_user(session, email="admin@example.com", name="Avery Admin")
            member = create_user(session, email="member@example.com", name="Mia Member")
            add_member(session, user=admin, facility=lab, role=Role.admin)
            add_member(session, user=member, facility=lab, role=Role.member)
            integrations_admin.create_custom(
                session,
                facility=lab,
                fields=keyed_api_fields(provider.url),
            )
            for name, source in (
                ("Who am I", CALLS_OAUTH),
                ("Maybe keyed", CATCHES_REFUSAL),
                ("Keyed echo", CALLS_KEYED),
            ):
                session.add(Script(facility_id=lab.id, name=name, source=source, published=True))
            session.commit()
            ids = {"lab": lab.id}
        yield {"live": live, "provider": provider, "ids": ids}


def run_script(page: Any, live: LiveServer, name: str) -> Any:
    page.goto(f"{live.url}/f/lab/scripts")
    card = page.locator(".script-card", has_text=name)
    card.locator(".run-script").click()
    return card


def run_result(card: Any) -> Any:
    result = card.locator(".run-result")
    result.wait_for(state="visible", timeout=20000)
    return json.loads(result.inner_text())


def test_a_custom_oauth_integration_prompts_and_resumes(browser: Any, site: dict[str, Any]) -> None:
    live, provider = site["live"], site["provider"]
    admin = signed_in(browser, live, "admin@example.com", height=800)
    admin.goto(f"{live.url}/f/lab/manage/integrations/new")
    shot(admin, "management-new-integration")
    form = admin.locator("#custom-integration-form")
    form.locator("[name=key]").fill("demo")
    form.locator("[name=name]").fill("Demo provider")
    form.locator("[name=auth_mode]").select_option("oauth2")
    form.locator("[name=base_url]").fill(f"{provider.url}/api")
    form.locator("[name=authorization_url]").fill(f"{provider.url}/authorize")
    form.locator("[name=token_url]").fill(f"{provider.url}/token")
    form.locator("[name=token_auth_method]").select_option("client_secret_basic")
    form.locator("[name=scopes]").fill("read write")
    form.locator("[name=client_id]").fill("scriptbox")
    form.locator("[name=client_secret]").fill(CLIENT_SECRET)
    form.locator("button[type=submit]").click()
    admin.wait_for_url("**/manage/integrations/demo")
    shot(admin, "management-integration-settings")
    assert "/oauth/callback" in admin.locator("#redirect-uri").inner_text()

    member = signed_in(browser, live, "member@example.com", height=800)
    card = run_script(member, live, "Who am I")
    prompt = member.locator(".grant-prompt")
    prompt.wait_for(timeout=20000)
    assert "Demo provider" in prompt.inner_text() and "Who am I" in prompt.inner_text()
    shot(member, "scripts-grant-prompt")
    with member.expect_popup() as popup_info:
        prompt.locator(".grant-sign-in").click()
    popup = popup_info.value
    popup.wait_for_selector("#approve", timeout=20000)
    shot(popup, "provider-consent")
    popup.click("#approve")
    assert run_result(card)["username"] == "alice"
    assert prompt.count() == 0
    shot(member, "scripts-run-resumed")


def test_refusing_runs_the_scripts_except_branch(browser: Any, site: dict[str, Any]) -> None:
    member = signed_in(browser, site["live"], "member@example.com", height=800)
    card = run_script(member, site["live"], "Maybe keyed")
    prompt = member.locator(".grant-prompt")
    prompt.wait_for(timeout=20000)
    prompt.locator(".grant-refuse").click()
    assert run_result(card) == {"connected": False, "reason": "refused"}
    shot(member, "scripts-refused")


def test_with_a_master_account_no_prompt_and_the_call_log_says_master(
    browser: Any, site: dict[str, Any]
) -> None:
    live = site["live"]
    with live.app.app_context():
        session = db.session()
        integration = session.query(Integration).filter_by(key="keyed").one()
        connections.connect_with_credentials(
            session,
            integration=integration,
            owner="master",
            user_id=None,
            label="",
            fields={"api_key": API_KEY},
            parameters={},
            vault=extensions.vault(),
        )
        session.commit()
    member = signed_in(browser, live, "member@example.com", height=800)
    card = run_script(member, live, "Keyed echo")
    assert run_result(card) == {"status": 200}
    assert member.locator(".grant-prompt").count() == 0
    with live.app.app_context():
        rows = db.session.query(CallLog).all()
        assert [(r.integration_key, r.account_kind, r.status) for r in rows] == [
            ("keyed", "master", 200)
        ]
    admin = signed_in(browser, live, "admin@example.com", height=800)
    admin.goto(f"{live.url}/f/lab/manage/calls")
    # In words since 77aae13, the code in the title.
    admin.locator("#calls td[title=master]", has_text="the facility's account").wait_for()
    shot(admin, "management-call-log")


def test_an_api_key_integration_prompts_with_a_form(browser: Any, site: dict[str, Any]) -> None:
    member = signed_in(browser, site["live"], "member@example.com", height=800)
    card = run_script(member, site["live"], "Keyed echo")
    prompt = member.locator(".grant-prompt")
    prompt.wait_for(timeout=20000)
    with member.expect_popup() as popup_info:
        prompt.locator(".grant-sign-in").click()
    popup = popup_info.value
    popup.fill("input[name=api_key]", API_KEY)
    shot(popup, "api-key-form")
    popup.click("#credentials-form button[type=submit]")
    assert run_result(card) == {"status": 200}


def test_settings_shows_the_waiting_run_and_its_prompt_and_connecting_there_resumes_it(
    browser: Any, site: dict[str, Any]
) -> None:
    """Settings → Integrations said nothing of a run waiting for that account, and showed
    no prompt box: it had no websocket of the facility, so the open prompts were never
    sent to it."""
    live = site["live"]
    member = signed_in(browser, live, "member@example.com", height=800)
    run_script(member, live, "Keyed echo")
    member.locator(".grant-prompt").wait_for(timeout=20000)  # pushed on the Scripts page
    member.goto(f"{live.url}/settings/integrations")
    row = member.locator(".integration-row[data-key=keyed]")
    note = row.locator(".waiting-note")
    assert note.inner_text() == (
        "waiting 1 run waits for this sign-in: Keyed echo. Connect the account here and it"
        " resumes."
    )
    run_link = note.get_by_role("link", name="Keyed echo", exact=True)
    run_path = run_link.get_attribute("href")
    assert run_path is not None and run_path.startswith("/f/lab/runs/")
    # The prompt box, sent when this page's websocket connected (after it was pushed).
    prompt = member.locator("#prompts .grant-prompt")
    prompt.wait_for(timeout=10000)
    assert "Keyed echo wants to use Keyed API with your account." in prompt.inner_text()
    shot(member, "settings-integrations-waiting-run")
    row.locator("input[name=api_key]").fill(API_KEY)
    row.locator("button[type=submit]").click()  # connects and reloads the page
    member.locator(".integration-row[data-key=keyed] .badge.ok").wait_for(timeout=10000)
    # Connecting here answered the prompt: the run went on at once (it would otherwise
    # wait for the prompt to expire, minutes away), and nothing waits any more.
    member.goto(f"{live.url}{run_path}")
    member.locator("#run-status", has_text="succeeded").wait_for(timeout=30000)
    with live.app.app_context():
        assert [g.state for g in db.session.query(Grant).all()] == ["granted"]
    member.goto(f"{live.url}/settings/integrations")
    assert member.locator(".waiting-note").count() == 0



def test_settings_drops_the_waiting_note_once_its_prompt_is_answered(
    browser: Any, site: dict[str, Any]
) -> None:
    """The note that a run waits for this sign-in stayed on Settings after its prompt was
    refused (or answered elsewhere, or expired), until the page was loaded again."""
    live = site["live"]
    member = signed_in(browser, live, "member@example.com", height=800)
    run_script(member, live, "Keyed echo")
    member.locator(".grant-prompt").wait_for(timeout=20000)
    member.goto(f"{live.url}/settings/integrations")
    note = member.locator(".integration-row[data-key=keyed] .waiting-note")
    note.wait_for()
    prompt = member.locator("#prompts .grant-prompt")
    prompt.wait_for(timeout=10000)
    prompt.locator(".grant-refuse").click()
    note.wait_for(state="detached", timeout=10000)
    assert member.locator(".integration-row[data-key=keyed] .badge.ok").count() == 0
    with live.app.app_context():
        assert [g.state for g in db.session.query(Grant).all()] == ["refused"]


PAGES = [
    ("scripts", "/f/lab/scripts"),
    ("editor", "/f/lab/editor"),
    ("management", "/f/lab/manage"),
    ("management-new", "/f/lab/manage/integrations/new"),
    ("management-keyed", "/f/lab/manage/integrations/keyed"),
    ("call-log", "/f/lab/manage/calls"),
    ("settings-integrations", "/settings/integrations"),
    ("settings-tokens", "/settings/tokens"),
    ("settings-password", "/settings/password"),
]


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (375, 800)])
def test_every_page_renders_on_a_laptop_and_a_phone(browser: Any, site: dict[str, Any],
                                                    width: int, height: int) -> None:
    live = site["live"]
    errors: list[str] = []

    def watch(page: Any) -> None:
        page.on("pageerror", lambda error: errors.append(str(error)))
        # A CSP violation (inline script or style, a blocked connection) is a console error.
        # (The browser's own favicon request is no page's doing.)
        page.on("console", lambda msg: errors.append(f"{page.url}: {msg.text}")
                if msg.type == "error" and not msg.location.get("url", "").endswith(
                    "/favicon.ico") else None)

    anonymous = browser.new_page(viewport={"width": width, "height": height})
    watch(anonymous)
    anonymous.goto(f"{live.url}/login")
    shot(anonymous, f"login-{width}")
    page = signed_in(browser, live, "admin@example.com", height=800)
    page.set_viewport_size({"width": width, "height": height})
    watch(page)
    for name, path in PAGES:
        response = page.goto(f"{live.url}{path}")
        assert response is not None and response.status == 200, (path, response)
        page.wait_for_load_state("networkidle")
        shot(page, f"{name}-{width}")
    assert errors == []  # no JavaScript error on any page


def test_settings_shows_the_prompts_of_every_facility_of_the_member(
    browser: Any, site: dict[str, Any]
) -> None:
    """Settings connected the websocket of one facility only (the first with a run waiting
    when it loaded, else the first by name): a run in another facility of the member's that
    asked for their sign-in while they were on Settings showed no prompt there."""
    live = site["live"]
    with live.app.app_context():
        session = db.session()
        zeta = create_facility(session, slug="zeta", name="Zeta Works")  # after "The Lab"
        member = session.query(User).filter_by(email="member@example.com").one()
        add_member(session, user=member, facility=zeta, role=Role.member)
        integrations_admin.create_custom(
            session, facility=zeta, fields=keyed_api_fields(site["provider"].url)
        )
        script = Script(facility_id=zeta.id, name="Zeta echo", source=CALLS_KEYED, published=True)
        session.add(script)
        session.commit()
        script_id = script.id
    page = signed_in(browser, live, "member@example.com", height=800)
    page.goto(f"{live.url}/settings/integrations")
    assert page.locator(".facility-section").evaluate_all(
        "(sections) => sections.map((s) => s.dataset.facility)"
    ) == ["lab", "zeta"]
    # Started from this page's own session (as a script's Run button does, on another page
    # of the member's that then went away): the run asks whoever has a page open.
    run: dict[str, Any] = page.evaluate(
        """async (scriptId) => {
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch('/api/f/zeta/runs', {method: 'POST', headers: {
              'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
              body: JSON.stringify({script_id: scriptId, input: {}, interactive: true})});
            return await r.json();
        }""",
        script_id,
    )
    prompt = page.locator("#prompts .grant-prompt")
    prompt.wait_for(timeout=20000)
    assert "Zeta echo wants to use Keyed API with your account." in prompt.inner_text()
    with page.expect_popup() as popup_info:
        prompt.locator(".grant-sign-in").click()
    popup = popup_info.value
    popup.fill("input[name=api_key]", API_KEY)
    popup.click("#credentials-form button[type=submit]")
    prompt.wait_for(state="detached", timeout=20000)
    page.goto(f"{live.url}/f/zeta/runs/{run['id']}")
    page.locator("#run-status", has_text="succeeded").wait_for(timeout=30000)


def test_a_member_with_only_a_labelled_account_is_told_why_the_prompt_asks(
    browser: Any, site: dict[str, Any]
) -> None:
    """Mia connected the keyed API only as "work"; a script naming no account asks for
    her default one, and the prompt says so in the server's words."""
    live = site["live"]
    with live.app.app_context():
        session = db.session()
        integration = session.query(Integration).filter_by(key="keyed").one()
        mia = session.query(User).filter_by(email="member@example.com").one()
        connections.connect_with_credentials(
            session,
            integration=integration,
            owner="user",
            user_id=mia.id,
            label="work",
            fields={"api_key": API_KEY},
            parameters={},
            vault=extensions.vault(),
        )
        session.commit()
        service = integration.name
    member = signed_in(browser, live, "member@example.com", height=800)
    card = run_script(member, live, "Maybe keyed")
    prompt = member.locator(".grant-prompt")
    prompt.wait_for(timeout=20000)
    assert prompt.locator(".grant-account-note").inner_text() == (
        f"This script asks for your default {service} account (connected without a label); "
        "your 'work' account is used only by scripts that name it."
    )
    prompt.locator(".grant-refuse").click()
    assert run_result(card) == {"connected": False, "reason": "refused"}
