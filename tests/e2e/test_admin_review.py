"""An admin's journeys through Management in a real browser: what each action shows next,
without a reload."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from app import db
from app.models import (
    CallLog,
    Facility,
    Integration,
    Role,
    User,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.models._types import utcnow
from app.services import integrations_admin, invitations
from app.testing import LiveServer
from tests.conftest import (
    add_member,
    create_integration,
    create_user,
    demo_oauth_fields,
)
from tests.e2e.conftest import shot
from tests.e2e.people import admin_of_lab, fits, lab_oauth_provider, signed_in

pytestmark = pytest.mark.browser


@pytest.fixture
def admin_page(browser: Any, live: LiveServer) -> Iterator[Any]:
    """A browser page signed in as the admin of facility `lab`; dialogs are accepted."""
    page = admin_of_lab(browser, live)
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    page.context.close()


def test_the_credential_fields_follow_the_auth_mode_until_edited(
    admin_page: Any, live: LiveServer
) -> None:
    page = admin_page
    page.goto(f"{live.url}/f/lab/manage/integrations/new")
    form = page.locator("#custom-integration-form")
    fields = form.locator("[name=credential_fields]")
    form.locator("[name=auth_mode]").select_option("api_key")
    assert fields.input_value() == "api_key"
    # Switching on used to keep "api_key", and Basic then asked for a placement.
    form.locator("[name=auth_mode]").select_option("basic")
    assert fields.input_value() == "username password"
    form.locator("[name=key]").fill("plain")
    form.locator("[name=name]").fill("Plain API")
    form.locator("[name=base_url]").fill("https://api.example.com")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/manage/integrations/plain")
    with live.app.app_context():
        stored = db.session.query(Integration).filter_by(key="plain").one()
        assert stored.credential_fields == ["username", "password"]
        db.session.remove()
    # What the admin typed stays when the mode changes.
    page.goto(f"{live.url}/f/lab/manage/integrations/new")
    form.locator("[name=auth_mode]").select_option("api_key")
    fields.fill("api_key username")
    form.locator("[name=auth_mode]").select_option("api_key_secret")
    assert fields.input_value() == "api_key username"
    shot(page, "management-new-credential-fields")


def test_webhook_endpoints_are_added_and_removed_without_a_reload(
    admin_page: Any, live: LiveServer
) -> None:
    page = admin_page
    page.goto(f"{live.url}/f/lab/manage")
    section = page.locator("#webhooks")
    form = section.locator("#add-webhook")
    assert section.locator("#no-webhooks").is_visible()
    # No event ticked: said in words before anything is sent (the API's answer was
    # "events: List should have at least 1 item after validation, not 0").
    for box in form.locator("input[name=events]").all():
        box.uncheck()
    form.locator("[name=url]").fill("https://hooks.example.com/in")
    form.locator("button[type=submit]").click()
    assert form.locator(".form-error").inner_text() == "Tick at least one event to send."
    form.locator("input[name=events]").first.check()
    form.locator("[name=url]").press("Enter")
    row = section.locator("#webhook-endpoints tbody tr")
    row.wait_for(state="visible")
    # "No endpoints yet." stayed above the new endpoint until the page was reloaded.
    assert section.locator("#no-webhooks").is_hidden()
    assert form.locator(".form-error").is_hidden()
    secret = section.locator("#webhook-secret")
    assert secret.locator(".secret-url").inner_text() == "https://hooks.example.com/in"
    assert secret.locator(".secret").inner_text().startswith("whsec_")
    shot(page, "management-webhook-added")
    # Remove asks first (it used to delete at once), then the list and the secret follow.
    questions: list[str] = []
    page.on("dialog", lambda dialog: questions.append(dialog.message))
    row.locator(".remove-webhook").click()
    row.wait_for(state="detached")
    assert questions == [
        "Remove the endpoint https://hooks.example.com/in? Scriptbox stops sending to it and "
        "forgets its delivery log."
    ]
    assert section.locator("#no-webhooks").is_visible()
    assert section.locator("#webhook-endpoints").is_hidden()
    assert secret.is_hidden()


def test_the_delivery_log_names_the_endpoint_and_reads_on_a_phone(
    admin_page: Any, live: LiveServer
) -> None:
    url = "https://hooks.example.com/scriptbox/events/in"
    with live.app.app_context():
        session = db.session()
        lab = session.query(Facility).filter_by(slug="lab").one()
        endpoint = WebhookEndpoint(facility_id=lab.id, url=url, events=["run.finished"],
                                   secret_enc="unused", active=True)
        session.add(endpoint)
        session.flush()
        for _ in range(3):  # failed: the sender leaves them alone
            session.add(WebhookDelivery(
                endpoint_id=endpoint.id, facility_id=lab.id, event="run.finished", payload={},
                status="failed", attempts=8,
                last_error="could not find the host hooks.example.com: check the endpoint's URL"))
        session.commit()
        db.session.remove()
    page = admin_page
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"{live.url}/f/lab/manage")
    row = page.locator("#webhook-deliveries tbody tr").first
    # The endpoint column showed its bare id.
    assert row.locator("td").nth(2).inner_text() == url
    # Squeezed into the phone's width, every cell wrapped letter by letter ("pendi/ng",
    # "run.fi/nishe/d") and the columns past the card's edge were cut off.
    lines = page.evaluate(
        """(row) => [row.querySelector('time'), row.cells[1], row.querySelector('.badge')]
           .map((node) => {
             const range = document.createRange();
             range.selectNodeContents(node);
             return range.getClientRects().length;
           })""",
        row.element_handle(),
    )
    assert lines == [1, 1, 1]
    assert page.evaluate(
        "getComputedStyle(document.getElementById('webhook-deliveries').parentElement)"
        ".overflowX") == "auto"
    fits(page, "management-webhook-deliveries-375")


def test_a_failed_master_sign_in_is_said_on_the_integrations_page(
    admin_page: Any, live: LiveServer
) -> None:
    with lab_oauth_provider(live, client_secret="a-mistyped-secret"):
        page = admin_page
        page.goto(f"{live.url}/f/lab/manage/integrations/demo")
        page.evaluate("window.notReloaded = true")
        with page.expect_popup() as opened:
            page.click("#connect-master")
        popup = opened.value
        popup.wait_for_url("**/authorize**")
        popup.click("#approve")
        # The failure showed only in the sign-in window ("ask an admin to check the
        # integration's settings", to the admin), and closing it reloaded this page as if
        # nothing had happened.
        error = page.locator("#connect-master ~ .form-error")
        error.wait_for(state="visible")
        assert error.inner_text() == (
            "The provider refused the sign-in (invalid_client). Check the client id and secret "
            "in the integration's settings (Test connection asks the provider), then add the "
            "master account again."
        )
        if not popup.is_closed():
            popup.wait_for_event("close")
        # The page checks every half second whether the window closed; a reload would
        # follow at the next check.
        page.wait_for_timeout(1200)
        assert page.evaluate("window.notReloaded === true")
        shot(page, "management-master-sign-in-refused")


def test_the_call_log_shows_older_calls_a_page_at_a_time(
    admin_page: Any, live: LiveServer
) -> None:
    with live.app.app_context():
        session = db.session()
        lab = session.query(Facility).filter_by(slug="lab").one()
        for n in range(1, 56):  # the API's page is 50 calls
            session.add(CallLog(facility_id=lab.id, integration_key="keyed", method="GET",
                                path=f"/items/{n}", status=500 if n <= 3 else 200))
        session.commit()
        db.session.remove()
    page = admin_page
    page.goto(f"{live.url}/f/lab/manage/calls")
    rows = page.locator("#calls tbody tr")
    older = page.locator("#older-calls")
    older.wait_for(state="visible")
    # The first 50 were all there was: the five oldest calls could not be reached.
    assert rows.count() == 50 and rows.first.locator(".mono").inner_text() == "/items/55"
    older.click()
    older.wait_for(state="hidden")
    assert rows.count() == 55 and rows.last.locator(".mono").inner_text() == "/items/1"
    # A filter starts over from the newest.
    page.locator("#call-filters [name=status]").select_option("error")
    page.wait_for_function("() => document.querySelectorAll('#calls tbody tr').length === 3")
    assert older.is_hidden()
    shot(page, "management-call-log-older")
    # The filter is in the address: a reload (or a shared link) keeps it; it was lost.
    assert page.url.endswith("/f/lab/manage/calls?status=error")
    page.reload()
    assert page.locator("#call-filters [name=status]").input_value() == "error"
    page.wait_for_function("() => document.querySelectorAll('#calls tbody tr').length === 3")
    page.locator("#call-filters [name=status]").select_option("")
    page.wait_for_function("() => document.querySelectorAll('#calls tbody tr').length === 50")
    assert page.url.endswith("/f/lab/manage/calls")
    page.get_by_role("link", name="Usage and quota").click()  # and the way back
    page.wait_for_url("**/f/lab/manage/usage")


def test_a_call_log_filter_the_page_cannot_read_lists_no_call(
    admin_page: Any, live: LiveServer
) -> None:
    with live.app.app_context():
        session = db.session()
        lab = session.query(Facility).filter_by(slug="lab").one()
        for n, status in enumerate((200, 500)):
            session.add(CallLog(facility_id=lab.id, integration_key="keyed", method="GET",
                                path=f"/items/{n}", status=status))
        session.commit()
        db.session.remove()
    page = admin_page
    # ?status=bogus listed every call, as if no status had been asked for.
    page.goto(f"{live.url}/f/lab/manage/calls?status=bogus")
    assert page.locator(".filter-problem").inner_text() == (
        "Status takes OK or Errors, not “bogus”.")
    rows = page.locator("#calls tbody tr")
    assert rows.count() == 1 and rows.inner_text() == "No calls match."
    # Choosing a status lists its calls, and the sentence goes.
    page.locator("#call-filters [name=status]").select_option("error")
    page.wait_for_function(
        "() => document.querySelector('#calls tbody tr .mono')?.textContent === '/items/1'")
    assert rows.count() == 1 and page.locator(".filter-problem").count() == 0
    assert page.url.endswith("/f/lab/manage/calls?status=error")


def test_an_endpoint_the_outbound_guard_refuses_is_said_in_the_form(
    admin_page: Any, live: LiveServer
) -> None:
    page = admin_page
    page.goto(f"{live.url}/f/lab/manage")
    form = page.locator("#add-webhook")
    # It used to be added, and every delivery to it was then refused.
    form.locator("[name=url]").fill("https://127.0.0.2/hooks")
    form.locator("button[type=submit]").click()
    error = form.locator(".form-error")
    error.wait_for(state="visible")
    assert error.inner_text() == (
        "url: 127.0.0.2 is a private or loopback address this server may not send to; use "
        "the receiver's public https address, or ask the server's operator to allow that "
        "network in SCRIPTBOX_PRIVATE_NETWORK_ALLOW"
    )
    assert page.locator("#webhook-endpoints tbody tr").count() == 0


def test_a_delivery_being_retried_says_so_and_when_with_its_date(
    admin_page: Any, live: LiveServer
) -> None:
    now = utcnow()
    with live.app.app_context():
        session = db.session()
        lab = session.query(Facility).filter_by(slug="lab").one()
        endpoint = WebhookEndpoint(facility_id=lab.id, url="https://hooks.example.com/in",
                                   events=["run.finished"], secret_enc="unused", active=True)
        session.add(endpoint)
        session.flush()
        # A later try than the sender makes (it never looks), on another day and today.
        later = WebhookDelivery(
            endpoint_id=endpoint.id, facility_id=lab.id, event="run.finished", payload={},
            status="pending", attempts=3, created_at=now - timedelta(minutes=5),
            next_attempt_at=now + timedelta(days=2), response_code=500,
            last_error="answered HTTP 500")
        soon = WebhookDelivery(
            endpoint_id=endpoint.id, facility_id=lab.id, event="run.finished", payload={},
            status="pending", attempts=1, created_at=now,
            next_attempt_at=now + timedelta(seconds=30),
            last_error="could not connect to hooks.example.com: check that the receiver is running")
        session.add_all([later, soon])
        session.commit()
        ids = {"later": later.id, "soon": soon.id}
        due = {"later": later.next_attempt_at, "soon": soon.next_attempt_at}
        attempts = int(live.app.config["WEBHOOK_MAX_ATTEMPTS"])
        db.session.remove()
    page = admin_page
    page.goto(f"{live.url}/f/lab/manage")

    def row(name: str) -> Any:
        return page.locator(f'#webhook-deliveries tr[data-delivery-id="{ids[name]}"]')

    def local(script: str, when: datetime) -> str:
        text: str = page.evaluate(script, when.isoformat())
        return text

    # Both said "pending", as if nothing had been tried, with a bare time as the next try.
    # Now how the tries went and when the next one is, in words.
    assert row("later").locator(".delivery-status").inner_text() == (
        f"retrying failed 3 times (HTTP 500); attempt 4 of {attempts} in 2 days")
    assert row("soon").locator(".delivery-status").inner_text() == (
        f"retrying failed once (no answer); attempt 2 of {attempts} in under a minute")
    assert "could not connect to hooks.example.com" in row("soon").inner_text()
    # The last response once: its code, or the words when no answer came ("500 answered
    # HTTP 500" said it twice).
    assert row("later").locator(".delivery-response").inner_text() == "HTTP 500"
    assert row("soon").locator(".delivery-response").inner_text().startswith(
        "could not connect to hooks.example.com")
    # The next try in the page's local time: with its date when it is not today.
    dated = "(iso) => new Date(iso).toLocaleDateString() + ' ' + new Date(iso).toLocaleTimeString()"
    assert row("later").locator("td").nth(5).inner_text().split() == local(
        dated, due["later"]).split()
    today = page.evaluate(
        "(iso) => new Date(iso).toDateString() === new Date().toDateString()",
        due["soon"].isoformat())
    assert row("soon").locator("td").nth(5).inner_text().split() == local(
        "(iso) => new Date(iso).toLocaleTimeString()" if today else dated, due["soon"]).split()
    assert row("soon").locator("td").nth(0).inner_text() == local(
        "(iso) => new Date(iso).toLocaleString()", now)
    # The log fits its card at a desktop's width: no column scrolled out of sight.
    assert page.evaluate("(() => { const box = document.getElementById('webhook-deliveries')"
                         ".parentElement; return box.scrollWidth <= box.clientWidth; })()")
    shot(page, "management-webhook-retrying")
    page.set_viewport_size({"width": 375, "height": 800})
    fits(page, "management-webhook-retrying-375")


def test_withdrawing_the_last_invitation_takes_its_heading_along(
    admin_page: Any, live: LiveServer
) -> None:
    with live.app.app_context():
        session = db.session()
        lab = session.query(Facility).filter_by(slug="lab").one()
        admin = session.query(User).filter_by(email="admin@example.com").one()
        for email in ("ines@example.com", "jo@example.com"):
            invitations.invite(session, facility=lab, email=email, role="member",
                               invited_by=admin)
        session.commit()
        db.session.remove()
    page = admin_page
    page.goto(f"{live.url}/f/lab/manage")
    page.evaluate("window.notReloaded = true")
    heading = page.get_by_role("heading", name="Invited, not yet accepted")
    rows = page.locator("#invitations tbody tr")
    assert heading.is_visible() and rows.count() == 2
    rows.first.locator(".withdraw-invitation").click()
    page.wait_for_function("() => document.querySelectorAll('#invitations tbody tr').length === 1")
    assert heading.is_visible()
    rows.first.locator(".withdraw-invitation").click()
    # The heading stayed above an empty table until a reload.
    heading.wait_for(state="hidden")
    assert page.locator("#invitations").is_hidden()
    assert page.evaluate("window.notReloaded === true")
    with live.app.app_context():
        lab = db.session.query(Facility).filter_by(slug="lab").one()
        assert invitations.pending_in(db.session(), facility=lab) == []
        db.session.remove()


def test_a_members_refused_sign_in_is_said_in_settings_beside_the_account(
    admin_page: Any, browser: Any, live: LiveServer
) -> None:
    with live.app.app_context():
        session = db.session()
        lab = session.query(Facility).filter_by(slug="lab").one()
        member = create_user(session, email="mia@example.com", name="Mia Member")
        add_member(session, user=member, facility=lab, role=Role.member)
        session.commit()
        db.session.remove()
    with lab_oauth_provider(live):
        page = signed_in(browser, live, "mia@example.com")
        page.goto(f"{live.url}/settings/integrations")
        page.evaluate("window.notReloaded = true")
        row = page.locator(".integration-row[data-key=demo]")
        with page.expect_popup() as opened:
            row.locator(".add-account button[type=submit]").click()
        popup = opened.value
        popup.wait_for_url("**/authorize**")
        popup.click("#deny")
        # The refusal showed only in the sign-in window; this page said nothing.
        error = row.locator(".form-error")
        error.wait_for(state="visible")
        assert error.inner_text() == (
            "You declined the sign-in at the provider; nothing was connected.")
        if not popup.is_closed():
            popup.wait_for_event("close")
        page.wait_for_timeout(1200)  # the page checks every half second for a closed window
        assert page.evaluate("window.notReloaded === true")
        shot(page, "settings-sign-in-declined")
        # Signing in then: the page shows the account connected (and the failure is gone).
        with page.expect_popup() as opened:
            row.locator(".add-account button[type=submit]").click()
        popup = opened.value
        popup.wait_for_url("**/authorize**")
        popup.click("#approve")
        page.wait_for_function("() => window.notReloaded === undefined")
        row.locator(".badge.ok").wait_for()
        assert "connected" in row.locator(".accounts").inner_text()
        assert row.locator(".form-error").is_hidden()
        page.context.close()


@pytest.mark.parametrize("width", [390, 1280])
def test_the_master_accounts_buttons_keep_apart_from_the_next_heading(
    admin_page: Any, live: LiveServer, width: int
) -> None:
    with live.app.app_context():
        session = db.session()
        lab = session.query(Facility).filter_by(slug="lab").one()
        create_integration(session, facility=lab, key="keyed")
        integrations_admin.create_custom(
            session, facility=lab,
            fields=demo_oauth_fields("https://provider.example.com", client_id="c",
                                     client_secret="s"))
        session.commit()
        db.session.remove()
    page = admin_page
    page.set_viewport_size({"width": width, "height": 900})
    gap = """([button, heading]) => {
        const a = document.querySelector(button).getBoundingClientRect();
        const b = [...document.querySelectorAll('#integration-page h2')]
          .find((h) => h.textContent === heading).getBoundingClientRect();
        return b.top - a.bottom;
      }"""
    # "OAuth setup" and "Test connection" sat right under the buttons (a gap of 0).
    page.goto(f"{live.url}/f/lab/manage/integrations/demo")
    assert page.evaluate(gap, ["#connect-master", "OAuth setup"]) >= 20
    fits(page, f"management-integration-oauth-{width}")
    page.goto(f"{live.url}/f/lab/manage/integrations/keyed")
    assert page.evaluate(gap, ["#master-credentials button", "Test connection"]) >= 20
    fits(page, f"management-integration-key-{width}")


def test_the_call_log_says_errors_and_accounts_in_words_with_their_codes_in_titles(
    admin_page: Any, live: LiveServer
) -> None:
    """The Error and Account columns showed the codes (no_integration_grant, master):
    words now, as the run page says them, the code still there for an admin in the title."""
    with live.app.app_context():
        session = db.session()
        lab = session.query(Facility).filter_by(slug="lab").one()
        session.add(CallLog(facility_id=lab.id, integration_key="keyed", method="GET",
                            path="/refused", error_code="no_integration_grant"))
        session.add(CallLog(facility_id=lab.id, integration_key="keyed", method="GET",
                            path="/sent", status=200, account_kind="master"))
        session.commit()
        db.session.remove()
    page = admin_page
    page.goto(f"{live.url}/f/lab/manage/calls")
    sent = page.locator("#calls tbody tr", has_text="/sent")
    refused = page.locator("#calls tbody tr", has_text="/refused")
    sent.wait_for()
    account = sent.locator("td[data-label=Account]")
    assert (account.inner_text(), account.get_attribute("title")) == (
        "the facility's account", "master"
    )
    error = refused.locator("td[data-label=Error]")
    assert (error.inner_text(), error.get_attribute("title")) == (
        "no sign-in", "no_integration_grant"
    )


def test_the_call_log_reads_on_a_phone(admin_page: Any, live: LiveServer) -> None:
    """Eleven columns in 375 px wrapped every name letter by letter ("Aver/y Admi/n") and
    cut off the columns past the card's edge: on a phone each call is a card of labelled
    lines, and what a call has not (no error) is left out."""
    with live.app.app_context():
        session = db.session()
        lab = session.query(Facility).filter_by(slug="lab").one()
        session.add(CallLog(facility_id=lab.id, integration_key="keyed", method="GET",
                            path="https://api.example.com/v1/items/42", status=200))
        session.commit()
        db.session.remove()
    page = admin_page
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"{live.url}/f/lab/manage/calls")
    row = page.locator("#calls tbody tr").first
    row.locator(".mono").wait_for()
    card = row.bounding_box()
    table = page.locator("#calls").bounding_box()
    assert card["x"] + card["width"] <= table["x"] + table["width"] + 1  # nothing cut off
    method = row.locator("td").nth(5)
    assert method.get_attribute("data-label") == "Method"
    assert page.evaluate(
        "(td) => getComputedStyle(td, '::before').content", method.element_handle()
    ) == '"Method"'
    assert row.locator("td").nth(10).is_hidden()  # no error
    assert row.locator("td").nth(7).is_visible()  # its status
    fits(page, "management-call-log-375")


@pytest.mark.parametrize("width", [1280, 375])
def test_each_webhook_event_box_sits_beside_its_name(
    admin_page: Any, live: LiveServer, width: int
) -> None:
    """The event checkboxes of the endpoint form stood above their names, so on a phone a box
    read as belonging to the name above or beside it."""
    page = admin_page
    page.set_viewport_size({"width": width, "height": 800})
    page.goto(f"{live.url}/f/lab/manage")
    labels = page.locator("#add-webhook label:has(input[name=events])")
    assert labels.count() == 5
    for label in labels.all():
        box = label.locator("input").bounding_box()
        whole = label.bounding_box()
        assert abs((box["y"] + box["height"] / 2) - (whole["y"] + whole["height"] / 2)) <= 3
        assert box["x"] + box["width"] <= whole["x"] + 20  # it comes first, on the left
    shot(page, f"management-webhook-form-{width}")
