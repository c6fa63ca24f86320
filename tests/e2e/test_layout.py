"""Layout (issue 11, item 9) in Debian's Chromium: every page fits a 375px phone, dark mode
follows prefers-color-scheme, empty states say what to do, members read errors in words."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from app import db, extensions
from app.models import Facility, Integration, Role, Script, User
from app.services import connect_links, connections
from app.testing import LiveServer
from tests.conftest import (
    PASSWORD,
    add_member,
    close_live,
    create_closed_oauth_integration,
    create_facility,
    create_integration,
    create_user,
    make_app,
)
from tests.e2e.conftest import shot
from tests.e2e.people import fits, signed_in
from tests.e2e.test_runs_page import start_run

pytestmark = pytest.mark.browser
LONG = (
    'resp = integrations.get("keyed", "/a/very/long/path/that/keeps/going/and/going/on")\n'
)
PAGES = [
    "/f/lab/scripts", "/f/lab/runs", "/f/lab/editor", "/f/lab/editor/{script}",
    "/f/lab/editor/{script}/versions", "/f/lab/manage", "/f/lab/manage/integrations/new",
    "/f/lab/manage/integrations/keyed", "/f/lab/manage/calls", "/settings/integrations",
]


@pytest.fixture
def live_lab(tmp_path: Path) -> Iterator[tuple[LiveServer, int]]:
    app = make_app(tmp_path)
    live = LiveServer(app)
    with app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab", name="The Lab")
        empty = create_facility(session, slug="empty", name="Quiet Room")
        for email, name, role in (("ada@example.com", "Ada", Role.admin),
                                  ("mo@example.com", "Mo", Role.member)):
            user = create_user(session, email=email, name=name)
            add_member(session, user=user, facility=lab, role=role)
            add_member(session, user=user, facility=empty, role=role)
        create_integration(session, facility=lab, key="keyed", name="Keyed API")
        create_closed_oauth_integration(session, facility=lab)  # its page shows a redirect URI
        script = Script(facility_id=lab.id, name="Long lines", source=LONG * 3, published=True)
        session.add(script)
        session.commit()
        script_id = script.id
    yield live, script_id
    close_live(live)


# GET routes that are not pages a person reads, or need a live prompt (the grant journeys
# cover the sign-in page); every other GET route is visited by the test below.
NOT_PAGES = ("/api/", "/static/", "/ws", "/healthz", "/favicon.ico", "/oauth/callback",
             "/f/<slug>/grants/")


def every_page(app: Any, values: dict[str, str]) -> list[str]:
    """Every page route of the app, with its parameters filled from `values`."""
    paths = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.rule.startswith(NOT_PAGES):
            continue
        path = rule.rule
        for argument in rule.arguments:
            pattern = next(p for p in (f"<{argument}>", f"<int:{argument}>") if p in path)
            path = path.replace(pattern, values[argument])  # KeyError: a new page to fill
        paths.append(path)
    return sorted(set(paths))


@pytest.mark.parametrize("width", [1280, 375])
@pytest.mark.parametrize("email", ["ada@example.com", "mo@example.com"])
def test_every_page_fits_as_admin_and_member(
    browser: Any, live_lab: tuple[LiveServer, int], email: str, width: int
) -> None:
    live, script_id = live_lab
    page = signed_in(browser, live, "ada@example.com", width=width)
    save_once(page, script_id)  # the versions page needs a saved version
    run_id = start_run(page, script_id)  # refused at once: no page of Ada's listens yet
    page.context.close()
    page = signed_in(browser, live, email, width=width)
    values = {
        "slug": "lab",
        "script_id": str(script_id),
        "run_id": run_id,
        "key": "keyed",
        "token": connect_link(live, email),  # the key form a connect link opens
    }
    paths = every_page(live.app, values)
    assert f"/f/lab/runs/{run_id}" in paths and "/settings/password" in paths
    for path in paths:
        page.goto(live.url + path)
        page.wait_for_load_state("networkidle")
        role = email.split("@")[0]
        fits(page, f"every-{role}-{width}-{path.strip('/').replace('/', '-') or 'home'}")
    page.context.close()


def test_an_oauth_integrations_page_fits_a_phone(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    live, _script_id = live_lab
    page = signed_in(browser, live, "ada@example.com", width=375)
    page.goto(f"{live.url}/f/lab/manage/integrations/oauthy")
    assert page.locator("#redirect-uri").inner_text().endswith("/oauth/callback")
    fits(page, "integration-oauth-375")
    page.context.close()


def test_copying_the_redirect_uri_without_a_clipboard_selects_it_and_says_how(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    """Browsers give pages no clipboard on plain http away from localhost (a LAN install):
    the button threw there and said nothing."""
    live, _script_id = live_lab
    page = signed_in(browser, live, "ada@example.com")
    page.add_init_script("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
    page.goto(f"{live.url}/f/lab/manage/integrations/oauthy")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.click("#copy-redirect")
    page.locator(".toast", has_text="press Ctrl+C").wait_for()
    assert page.evaluate("getSelection().toString()") == page.locator("#redirect-uri").inner_text()
    assert errors == []
    page.context.close()


def test_the_management_tables_become_cards_on_a_phone_and_keep_words_whole(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    live, _script_id = live_lab
    page = signed_in(browser, live, "ada@example.com", width=375)
    page.goto(f"{live.url}/f/lab/manage")
    # A link squeezed into a narrow column wrapped letter by letter ("Set/tin/gs").
    broken = page.evaluate(
        "[...document.querySelectorAll('table.list a')]"
        ".filter(link => link.getClientRects().length > 1).map(link => link.textContent)")
    assert broken == []
    assert page.locator("table.list thead").first.is_hidden()
    fits(page, "management-cards-375")
    page.context.close()


def connect_link(live: LiveServer, email: str) -> str:
    """A fresh connect link to the Keyed API for the user (single use: one per test)."""
    with live.app.app_context():
        integration = db.session.scalar(select(Integration).where(Integration.key == "keyed"))
        user_id = db.session.scalar(select(User.id).where(User.email == email))
        assert integration is not None and user_id is not None
        _link, token = connect_links.issue(
            db.session(),
            facility_id=integration.facility_id,
            user_id=user_id,
            integration=integration,
            created_by=None,
            label="",
            return_to=None,
        )
        db.session.commit()
        db.session.remove()
    return token


def save_once(page: Any, script_id: int) -> None:
    page.evaluate(
        """async (id) => {
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            await fetch('/api/f/lab/scripts/' + id, {method: 'PATCH', headers: {
              'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
              body: JSON.stringify({description: 'saved once'})});
        }""",
        script_id,
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_fits_a_phone_in_both_schemes(
    browser: Any, live_lab: tuple[LiveServer, int], scheme: str
) -> None:
    live, script_id = live_lab
    context = browser.new_context(viewport={"width": 375, "height": 800}, color_scheme=scheme)
    page = context.new_page()
    page.goto(f"{live.url}/login")
    page.fill("input[name=email]", "ada@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    save_once(page, script_id)  # the versions page needs a saved version
    for path in PAGES:
        page.goto(live.url + path.format(script=script_id))
        page.wait_for_load_state("networkidle")
        name = path.strip("/").replace("/", "-").replace("{script}", "script")
        fits(page, f"phone-{scheme}-{name}")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == ("rgb(18, 21, 28)" if scheme == "dark" else "rgb(245, 246, 248)")
    context.close()


def test_dark_mode_at_desktop_width(browser: Any, live_lab: tuple[LiveServer, int]) -> None:
    live, script_id = live_lab
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="dark")
    page = context.new_page()
    page.goto(f"{live.url}/login")
    page.fill("input[name=email]", "ada@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    page.goto(f"{live.url}/f/lab/editor/{script_id}")
    card = page.evaluate("getComputedStyle(document.querySelector('.card')).backgroundColor")
    assert card == "rgb(27, 32, 41)"
    shot(page, "dark-editor-1280")
    page.goto(f"{live.url}/f/lab/runs")
    shot(page, "dark-runs-1280")
    context.close()


@pytest.mark.parametrize("width", [1280, 375])
def test_empty_states_say_what_to_do_next(
    browser: Any, live_lab: tuple[LiveServer, int], width: int
) -> None:
    live, _ = live_lab
    mo = signed_in(browser, live, "mo@example.com", width=width)
    mo.goto(f"{live.url}/f/empty/scripts")
    assert "ask them, or come back later" in mo.locator("#no-scripts").inner_text()
    fits(mo, f"empty-scripts-member-{width}")
    mo.goto(f"{live.url}/f/empty/runs")
    assert "Run a script from the Scripts page;" in mo.locator(".empty").inner_text()
    # A member has no editor: its link sent them back to the Scripts page.
    assert mo.locator(".empty a[href='/f/empty/editor']").count() == 0
    mo.context.close()
    ada = signed_in(browser, live, "ada@example.com", width=width)
    ada.goto(f"{live.url}/f/empty/runs")
    assert "Run a script from the Scripts page or the editor;" in ada.locator(".empty").inner_text()
    ada.locator(".empty a[href='/f/empty/editor']").wait_for()
    ada.goto(f"{live.url}/f/empty/editor")
    assert "press Save" in ada.locator("#no-scripts").inner_text()
    ada.goto(f"{live.url}/f/empty/scripts")
    assert "tick Published" in ada.locator("#no-scripts").inner_text()
    ada.goto(f"{live.url}/f/empty/manage")
    assert "No integrations yet" in ada.locator("main").inner_text()
    fits(ada, f"empty-manage-{width}")
    ada.context.close()


def test_members_read_errors_in_words_and_scripters_get_codes(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    live, script_id = live_lab
    mo = signed_in(browser, live, "mo@example.com", width=375)
    mo.goto(f"{live.url}/f/lab/scripts")
    card = mo.locator(".script-card", has_text="Long lines")
    card.locator(".run-script").click()
    mo.locator(".grant-refuse").click(timeout=60000)
    words = card.locator(".error-words")
    words.wait_for(timeout=30000)
    # The member refused the prompt: the words say so and what to do instead.
    assert words.inner_text().startswith("You chose not to sign in to Keyed API.")
    assert "no_integration_grant" not in card.locator(".run-error").inner_text()
    fits(mo, "member-error-words-375")
    card.locator(".run-link", has_text="Details").click()
    mo.locator("#run-error", has_text="You chose not to sign in to Keyed API").wait_for()
    assert "no_integration_grant" not in mo.locator("#run-error").inner_text()
    run_url = mo.url
    mo.context.close()

    ada = signed_in(browser, live, "ada@example.com", width=375)
    ada.goto(f"{live.url}/f/lab/runs")
    ada.locator("body[data-live=yes]").wait_for()  # an open page: the run may ask Ada
    run_id = start_run(ada, script_id)
    ada.locator(".grant-refuse").click(timeout=60000)  # refused on the page that started it
    # Leave only once the server took the refusal: a page left at once may drop it unsent.
    ada.locator(".toast", has_text="Refused.").wait_for(timeout=30000)
    ada.goto(f"{live.url}/f/lab/runs/{run_id}")
    ada.locator("#run-error", has_text="no_integration_grant").wait_for(timeout=30000)
    assert "(line 1)" in ada.locator("#run-error").inner_text()
    ada.goto(run_url)  # an admin reads Mo's run with its code too
    assert "no_integration_grant" in ada.locator("#run-error").inner_text()
    ada.context.close()


def test_settings_headings_name_each_facility(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    live, _ = live_lab
    mo = signed_in(browser, live, "mo@example.com", width=375)
    mo.goto(f"{live.url}/settings/integrations")
    headings = mo.locator(".facility-section h2").all_inner_texts()
    assert sorted(headings) == ["Integrations for Quiet Room", "Integrations for The Lab"]
    quiet = mo.locator(".facility-section[data-facility=empty] .empty-note").inner_text()
    assert "connect it here" in quiet
    fits(mo, "settings-integrations-headings-375")
    mo.context.close()


def test_a_page_opened_at_another_address_says_where_live_updates_work(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    # localhost for the public 127.0.0.1: the server refuses the page's websocket. A toast
    # that went after 4 s left a page whose runs never seemed to start.
    live, _ = live_lab
    elsewhere = SimpleNamespace(url=live.url.replace("127.0.0.1", "localhost"))
    page = signed_in(browser, elsewhere, "ada@example.com")
    page.goto(f"{elsewhere.url}/f/lab/runs?script_id=1")
    alert = page.locator("#toasts .toast.error[role=alert]")
    alert.wait_for()
    assert alert.inner_text() == (
        f"Live updates do not work at this address. Open {live.url} instead.")
    assert alert.locator("a").get_attribute("href") == f"{live.url}/f/lab/runs?script_id=1"
    page.wait_for_timeout(4500)  # longer than a passing toast stays
    assert alert.is_visible()
    page.context.close()


def connect_keyed_master(live: LiveServer) -> None:
    """A master account for `keyed`, whose address nothing listens at: a call is logged
    (not reached), then the run fails."""
    with live.app.app_context():
        session = db.session()
        integration = session.scalar(select(Integration).where(Integration.key == "keyed"))
        assert integration is not None
        connections.connect_with_credentials(
            session, integration=integration, owner="master", user_id=None, label="",
            fields={"api_key": "unused"}, parameters={}, vault=extensions.vault())
        session.commit()
        db.session.remove()


@pytest.mark.parametrize("width", [1280, 375])
def test_the_editors_side_card_holds_its_tables_after_a_run_with_a_long_call(
    browser: Any, live_lab: tuple[LiveServer, int], width: int
) -> None:
    """The Integration calls table has six columns in the narrow side card: it fits, and a
    call's long path wraps instead of making the card scroll sideways."""
    live, script_id = live_lab
    connect_keyed_master(live)
    page = signed_in(browser, live, "ada@example.com", width=width)
    page.goto(f"{live.url}/f/lab/editor/{script_id}")
    page.click("#run-script")
    # Nothing listens at the integration's address: the call is logged, then the run fails.
    row = page.locator("#run-calls tbody tr")
    row.first.wait_for(timeout=30000)
    assert "/a/very/long/path/that/keeps/going" in row.first.inner_text()
    side = page.evaluate("(() => { const s = document.querySelector('.run-side');"
                         " return [s.scrollWidth, s.clientWidth]; })()")
    assert side[0] <= side[1], f"the side card scrolls sideways at {width}px: {side}"
    fits(page, f"editor-calls-{width}")
    page.context.close()


def test_the_editors_call_path_reads_in_lines_at_a_desktop_and_as_a_card_on_a_phone(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    """At 1280px the side card's six columns left the call's path about a sixth of the
    table, a few characters a line; on a phone the table stayed a table, where the run
    page's and the call log's become a card per call (table.stacked)."""
    live, script_id = live_lab
    connect_keyed_master(live)
    measure = ("(() => { const td = document.querySelector('#run-calls tbody td.mono');"
               " return [td.getBoundingClientRect().width,"
               " td.closest('table').getBoundingClientRect().width]; })()")
    for width in (1280, 375):
        page = signed_in(browser, live, "ada@example.com", width=width)
        page.goto(f"{live.url}/f/lab/editor/{script_id}")
        page.click("#run-script")
        call = page.locator("#run-calls tbody tr").first
        call.wait_for(timeout=30000)
        cell, table = page.evaluate(measure)
        if width == 1280:
            assert cell >= table / 4, f"the path has {cell:.0f}px of a {table:.0f}px table"
            assert page.locator("#run-calls thead").is_visible()
        else:
            assert page.locator("#run-calls thead").is_hidden()
            assert cell >= table * 0.8, f"the path has {cell:.0f}px of a {table:.0f}px card"
            labels = call.locator("td").evaluate_all(
                "cells => cells.map((td) => getComputedStyle(td, '::before').content)")
            assert labels[:3] == ['"Request"', '"Status"', '"Account"']
            assert not call.locator("td").last.is_visible()  # it waited for no sign-in
        shot(page, f"editor-call-{width}")
        page.context.close()


def test_a_run_pages_call_card_on_a_phone_leaves_out_a_wait_it_had_not(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    """As the call log's cards do: a call that waited for no sign-in shows no empty
    "Sign-in wait ms" line on a phone."""
    live, script_id = live_lab
    connect_keyed_master(live)
    page = signed_in(browser, live, "ada@example.com", width=375)
    page.goto(f"{live.url}/f/lab/editor/{script_id}")
    page.click("#run-script")
    page.locator("#run-calls tbody tr").first.wait_for(timeout=30000)
    page.goto(f"{live.url}{page.locator('#run-link').get_attribute('href')}")
    call = page.locator(".calls-table tbody tr").first
    assert call.locator("td[data-label='Call ms']").is_visible()
    assert call.locator(".wait-ms").inner_text() == ""
    assert not call.locator(".wait-ms").is_visible()
    fits(page, "run-call-card-375")
    page.context.close()


@pytest.mark.parametrize("width", [1280, 375])
def test_several_sign_in_prompts_leave_most_of_the_page_in_view(
    browser: Any, live_lab: tuple[LiveServer, int], width: int
) -> None:
    """Three runs wait for three different accounts: their prompts stay in view while the
    page scrolls, so together they take at most half of the window (they scroll within it),
    and the last one can still be answered."""
    live, _script_id = live_lab
    waiting = {}
    with live.app.app_context():
        session = db.session()
        lab_id = session.scalar(select(Integration.facility_id).where(Integration.key == "keyed"))
        lab = session.get(Facility, lab_id)
        assert lab is not None
        for n in (1, 2, 3):
            create_integration(session, facility=lab, key=f"needed{n}", name=f"Needed API {n}")
            script = Script(facility_id=lab.id, name=f"Needs {n}", published=True,
                            source=f'integrations.get("needed{n}", "/echo")\n')
            session.add(script)
            session.flush()
            waiting[n] = script.id
        session.commit()
        db.session.remove()
    page = signed_in(browser, live, "mo@example.com", width=width, height=800)
    page.goto(f"{live.url}/f/lab/scripts")
    page.locator("#prompts").wait_for(state="attached")
    page.wait_for_load_state("networkidle")
    for script_id in waiting.values():
        start_run(page, script_id)
    prompts = page.locator(".grant-prompt")
    prompts.nth(2).wait_for(timeout=30000)
    height = page.evaluate("document.getElementById('prompts').getBoundingClientRect().height")
    assert height <= 0.45 * 800, f"three prompts take {height}px of an 800px window"
    fits(page, f"three-prompts-{width}")
    last = prompts.nth(2)
    last.locator(".grant-refuse").click()  # Playwright scrolls it into view first
    last.wait_for(state="detached", timeout=30000)
    assert prompts.count() == 2
    page.context.close()


def test_a_long_one_word_name_and_error_wrap_on_a_phone(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    # A snake_case name heads the script's card (an h2) and its link in the editor's list,
    # and an error quoting a URL fills the run page's error box: none of them wrapped, so
    # each page scrolled sideways at 375 px.
    live, _ = live_lab
    name = "sync_hubspot_contacts_to_google_sheets_every_morning_v2"
    source = 'raise ValueError("no sheet at https://sheets.example.com/' + "a1b2c3" * 12 + '")\n'
    with live.app.app_context():
        session = db.session()
        lab = session.scalar(select(Facility).where(Facility.slug == "lab"))
        script = Script(facility_id=lab.id, name=name, source=source, published=True)
        session.add(script)
        session.commit()
        script_id = script.id
    page = signed_in(browser, live, "ada@example.com", width=375)
    page.goto(f"{live.url}/f/lab/scripts")
    run_id = start_run(page, script_id)
    page.goto(f"{live.url}/f/lab/runs/{run_id}")
    page.locator("#run-error", has_text="no sheet at").wait_for()
    fits(page, "long-words-run-375")
    page.goto(f"{live.url}/f/lab/scripts")
    page.locator(".script-card h2", has_text=name).wait_for()
    fits(page, "long-words-scripts-375")
    page.goto(f"{live.url}/f/lab/editor/{script_id}")
    page.locator(".script-list a", has_text=name).wait_for()
    fits(page, "long-words-editor-375")
    page.context.close()


def test_a_phones_menu_opens_from_the_keyboard(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    """On a phone the links sit behind Menu, whose checkbox was display: none: Tab went from
    the brand straight into the page, and no key opened the menu (Runs, Settings, Sign out
    out of reach). Tab now lands on Menu, shown focused, and Space opens it."""
    live, _ = live_lab
    page = signed_in(browser, live, "mo@example.com", width=375)
    page.goto(f"{live.url}/f/lab/scripts")
    runs = page.locator("nav a[href='/f/lab/runs']")
    assert not runs.is_visible()
    page.focus(".brand")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "nav-toggle"
    outline = page.evaluate(
        "getComputedStyle(document.querySelector('.nav-toggle-label')).outlineStyle")
    assert outline == "solid"
    page.keyboard.press("Space")
    runs.wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('nav') !== null")
    page.context.close()
