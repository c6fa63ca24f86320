"""Scripter and admin journeys in a real browser: saving scripts, managing members."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from app import db
from app.models import Account, CallLog, Facility, Membership, Role, Script, User
from app.testing import LiveServer
from tests.conftest import (
    PASSWORD,
    add_member,
    create_facility,
    create_integration,
    create_user,
)
from tests.e2e.conftest import shot

pytestmark = pytest.mark.browser


@pytest.fixture
def site(live: LiveServer) -> Iterator[LiveServer]:
    """A facility `lab` with one admin, one scripter and one member, and a user of none."""
    with live.app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab", name="The Lab")
        for email, name, role in (
            ("admin@example.com", "Avery Admin", Role.admin),
            ("scripter@example.com", "Sam Scripter", Role.scripter),
            ("member@example.com", "Mia Member", Role.member),
        ):
            add_member(
                session, user=create_user(session, email=email, name=name), facility=lab, role=role
            )
        create_user(session, email="newcomer@example.com", name="Nico Newcomer")
        session.commit()
    yield live


def sign_in(browser: Any, live: LiveServer, email: str) -> Any:
    """A fresh browser context signed in as `email`."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{live.url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def saved_scripts(live: LiveServer) -> list[tuple[str, bool]]:
    """(name, published) of every script in the database."""
    with live.app.app_context():
        rows = db.session.scalars(select(Script).order_by(Script.id)).all()
        result = [(s.name, s.published) for s in rows]
        db.session.remove()
        return result


def test_a_new_script_saved_with_published_ticked_is_published(
    browser: Any, site: LiveServer
) -> None:
    page = sign_in(browser, site, "scripter@example.com")
    page.goto(f"{site.url}/f/lab/editor")
    page.fill("#script-name", "Fresh report")
    page.check("#script-published")
    page.click("#save-script")
    page.wait_for_url("**/f/lab/editor/*")
    page.locator("#save-status", has_text="Saved").wait_for()
    shot(page, "editor-saved-published")
    assert saved_scripts(site) == [("Fresh report", True)]
    member = sign_in(browser, site, "member@example.com")
    member.goto(f"{site.url}/f/lab/scripts")
    member.locator(".script-card", has_text="Fresh report").wait_for()


def roles(live: LiveServer) -> dict[str, str]:
    """email -> role of everyone in the facility."""
    with live.app.app_context():
        rows = db.session.execute(
            select(User.email, Membership.role).join(Membership, Membership.user_id == User.id)
        ).all()
        db.session.remove()
        return {email: role.value for email, role in rows}


def answer_next_dialog(page: Any, *, accept: bool) -> list[str]:
    """Accept or dismiss the next confirm(); the list receives its message."""
    messages: list[str] = []

    def handle(dialog: Any) -> None:
        messages.append(dialog.message)
        if accept:
            dialog.accept()
        else:
            dialog.dismiss()

    page.once("dialog", handle)
    return messages


def test_the_only_admin_cannot_demote_themselves_and_role_changes_ask_first(
    browser: Any, site: LiveServer
) -> None:
    page = sign_in(browser, site, "admin@example.com")
    page.goto(f"{site.url}/f/lab/manage")
    own = page.get_by_label("Role of Avery Admin")
    asked = answer_next_dialog(page, accept=False)
    own.select_option("member")
    page.wait_for_function(
        "document.querySelector('[aria-label=\"Role of Avery Admin\"]').value === 'admin'"
    )
    assert asked and "no longer be able to open Management" in asked[0]
    asked = answer_next_dialog(page, accept=True)
    own.select_option("member")
    page.locator(".toast", has_text="last admin").wait_for()
    assert own.input_value() == "admin"
    shot(page, "management-last-admin")
    assert roles(site)["admin@example.com"] == "admin"
    assert page.goto(f"{site.url}/f/lab/manage").status == 200

    other = page.get_by_label("Role of Mia Member")
    asked = answer_next_dialog(page, accept=True)
    other.select_option("scripter")
    page.locator(".toast", has_text="Mia Member is now scripter").wait_for()
    assert asked == ["Make Mia Member scripter?"]
    assert roles(site)["member@example.com"] == "scripter"


def test_an_admin_invites_by_email_and_the_invitee_accepts(browser: Any, site: LiveServer) -> None:
    admin = sign_in(browser, site, "admin@example.com")
    admin.goto(f"{site.url}/f/lab/manage")
    form = admin.locator("#add-member")
    form.locator("[name=email]").fill("newcomer@example.com")
    form.locator("[name=role]").select_option("scripter")
    form.locator("button[type=submit]").click()
    admin.locator("#invitations", has_text="newcomer@example.com").wait_for()
    admin.locator(".toast", has_text="Invited newcomer@example.com as scripter.").wait_for()
    assert "newcomer@example.com" not in roles(site)
    # Inviting the address again says what became of its invitation.
    form.locator("[name=email]").fill("newcomer@example.com")
    form.locator("[name=role]").select_option("member")
    form.locator("button[type=submit]").click()
    admin.locator(".toast", has_text="now says member (it said scripter)").wait_for()
    form.locator("[name=email]").fill("newcomer@example.com")
    form.locator("[name=role]").select_option("scripter")
    form.locator("button[type=submit]").click()
    admin.locator(".toast", has_text="now says scripter (it said member)").wait_for()
    # A refusal stays beside the form until something else is typed; it stayed on.
    form.locator("[name=email]").fill("member@example.com")
    form.locator("button[type=submit]").click()
    refused = form.locator(".form-error", has_text="already a member")
    refused.wait_for()
    form.locator("[name=email]").press_sequentially("x")
    refused.wait_for(state="hidden")

    newcomer = sign_in(browser, site, "newcomer@example.com")
    newcomer.wait_for_url("**/invitations")
    shot(newcomer, "invitations")
    invitation = newcomer.locator(".invitation", has_text="The Lab")
    assert "scripter" in invitation.inner_text()
    invitation.locator(".accept-invitation").click()
    newcomer.wait_for_url("**/f/lab/scripts")
    assert roles(site)["newcomer@example.com"] == "scripter"

    admin.reload()
    assert admin.locator("#invitations").count() == 0
    asked = answer_next_dialog(admin, accept=True)
    admin.locator("#members tr", has_text="Mia Member").locator(".remove-member").click()
    admin.locator(".toast", has_text="Mia Member was removed").wait_for()
    assert asked == ["Remove Mia Member from this facility?"]
    assert "member@example.com" not in roles(site)


READINESS_SCRIPT = """
integrations.get("keyed", "/a")
integrations.get("keyed", "/b", account="work")
integrations.get("keyed", "/c", account="personal")
integrations.get("keyed", "/d", account="user")
integrations.get("solo", "/e", account="master")
integrations.get("solo", "/f")
integrations.get("nothere", "/g")
"""


def test_the_readiness_panel_resolves_account_labels(browser: Any, site: LiveServer) -> None:
    with site.app.app_context():
        session = db.session()
        lab = session.scalars(select(Facility)).one()
        scripter = session.scalars(select(User).where(User.email == "scripter@example.com")).one()
        keyed = create_integration(session, facility=lab, key="keyed")
        create_integration(session, facility=lab, key="solo")
        for owner, label in (("master", ""), ("user", "work")):
            session.add(
                Account(
                    facility_id=lab.id,
                    integration_id=keyed.id,
                    owner_kind=owner,
                    user_id=scripter.id if owner == "user" else None,
                    label=label,
                )
            )
        script = Script(facility_id=lab.id, name="Accounts", source=READINESS_SCRIPT)
        session.add(script)
        session.commit()
        script_id = script.id
    page = sign_in(browser, site, "scripter@example.com")
    page.goto(f"{site.url}/f/lab/editor/{script_id}")
    items = page.locator("#readiness li")
    items.nth(6).wait_for()
    shot(page, "editor-readiness-labels")
    assert [line.replace("\u2014", "-") for line in items.all_inner_texts()] == [
        "Keyed - facility master account",
        'Keyed (account="work") - your account "work"',
        'Keyed (account="personal") - no account labelled "personal" yet:'
        " you will be asked to sign in connect now",
        'Keyed (account="user") - no account yet: you will be asked to sign in connect now',
        'Solo (account="master") - no master account is connected, and account="master" never'
        " asks anyone: the call will fail until an admin connects one",
        "Solo - no account yet: you will be asked to sign in connect now",
        "nothere - no such integration in this facility",
    ]


def test_the_call_log_page_shows_the_calls_time_and_the_sign_in_wait_apart(
    browser: Any, site: LiveServer
) -> None:
    with site.app.app_context():
        session = db.session()
        lab = session.scalars(select(Facility)).one()
        for path, duration, wait in (("/waited", 42.4, 300008.2), ("/direct", 17.0, None)):
            session.add(
                CallLog(
                    facility_id=lab.id,
                    integration_key="keyed",
                    account_kind="user",
                    method="GET",
                    path=path,
                    status=200,
                    duration_ms=duration,
                    wait_ms=wait,
                )
            )
        session.commit()
    page = sign_in(browser, site, "admin@example.com")
    page.goto(f"{site.url}/f/lab/manage/calls")
    waited = page.locator("#calls tr", has_text="/waited")
    waited.wait_for()
    direct = page.locator("#calls tr", has_text="/direct")
    shot(page, "call-log-wait")
    assert (waited.locator(".call-ms").inner_text(), waited.locator(".wait-ms").inner_text()) == (
        "42",
        "300008",
    )
    assert (direct.locator(".call-ms").inner_text(), direct.locator(".wait-ms").inner_text()) == (
        "17",
        "",
    )
    assert "Sign-in wait" in page.locator("#calls thead").inner_text()


def test_the_editor_sidebar_shows_a_saved_script_without_a_reload(
    browser: Any, site: LiveServer
) -> None:
    with site.app.app_context():
        session = db.session()
        lab = session.scalars(select(Facility)).one()
        session.add(Script(facility_id=lab.id, name="Alpha", source="result = 1"))
        session.commit()
    page = sign_in(browser, site, "scripter@example.com")
    page.goto(f"{site.url}/f/lab/editor")
    sidebar = page.locator(".script-list li")
    assert sidebar.all_inner_texts() == ["Alpha"]
    page.evaluate("window.notReloaded = true")
    page.fill("#script-name", "Beta")
    page.click("#save-script")
    page.locator(".script-list a[aria-current=page]", has_text="Beta").wait_for()
    assert sidebar.all_inner_texts() == ["Alpha", "Beta"]
    page.fill("#script-name", "Bravo")
    page.check("#script-published")  # publishing an existing script saves it
    page.locator(".script-list li", has_text="Bravo published").wait_for()
    assert sidebar.all_inner_texts() == ["Alpha", "Bravo published"]
    assert page.evaluate("window.notReloaded") is True
    shot(page, "editor-sidebar-after-save")


def test_a_failed_sign_in_keeps_the_email(browser: Any, site: LiveServer) -> None:
    page = browser.new_page()
    page.goto(f"{site.url}/login")
    page.fill("input[name=email]", "member@example.com")
    page.fill("input[name=password]", "not the password")
    page.click("#login-form button[type=submit]")
    page.locator(".error[role=alert]").wait_for()
    assert page.input_value("input[name=email]") == "member@example.com"
    assert page.input_value("input[name=password]") == ""
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url("**/f/lab/scripts")
    page.close()


def test_the_site_icon_is_served(browser: Any, site: LiveServer) -> None:
    page = browser.new_page()
    response = page.goto(f"{site.url}/favicon.ico")
    assert response is not None and response.status == 200
    assert response.headers["content-type"] in ("image/x-icon", "image/vnd.microsoft.icon")
    assert response.body()[:4] == b"\x00\x00\x01\x00"  # an ICO file's header
    page.goto(f"{site.url}/login")
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert page.evaluate("async (href) => (await fetch(href)).status", icon) == 200
    page.close()


def test_an_admin_renames_the_facility_from_management(browser: Any, site: LiveServer) -> None:
    admin = sign_in(browser, site, "admin@example.com")
    admin.goto(f"{site.url}/f/lab/manage")
    form = admin.locator("#facility-name")
    before = form.locator("[name=name]").input_value()
    form.locator("[name=name]").fill("   ")
    form.locator("button[type=submit]").click()
    form.locator(".form-error", has_text="give the facility a name").wait_for()
    form.locator("[name=name]").fill("Lab Renamed")
    form.locator("button[type=submit]").click()
    admin.locator(".toast", has_text="The facility is now called Lab Renamed.").wait_for()
    assert admin.locator("h1").inner_text() == "Management · Lab Renamed"
    assert admin.url.endswith("/f/lab/manage")  # the address stays
    form.locator("[name=name]").fill(before)  # as the other tests expect it
    form.locator("button[type=submit]").click()
    admin.locator(".toast", has_text=f"The facility is now called {before}.").wait_for()
