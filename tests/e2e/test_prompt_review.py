"""The sign-in prompt in Debian's Chromium (DESIGN §4): a sign-in declined or failed at the
provider is said in the prompt, which closes the window and offers the two ways on (try
again, refuse); and at phone width a waiting prompt is a one-line bar that hides none of
the page it stays over (its title, Stop and Run again, the menus), at 390 and 1280 px."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app import db
from app.devprovider import ClientSpec, ProviderConfig, create_provider_app, serve_in_thread
from app.models import Grant, Role, Run, Script
from app.services import integrations_admin
from app.testing import LiveServer
from tests.conftest import add_member, create_facility, create_user, demo_oauth_fields
from tests.e2e.conftest import shot
from tests.e2e.people import fits, lands_on, signed_in
from tests.e2e.test_grant_journeys import run_result, run_script
from tests.e2e.test_runs_page import start_run

pytestmark = pytest.mark.browser
WHO_AM_I = """
try:
    me = integrations.get("demo", "/me", account="user").json()
    result = {"username": me["username"]}
except integrations.NoIntegrationGrant as refused:
    result = {"refused": refused.reason}
"""
DECLINED = "You declined the sign-in at the provider; nothing was connected."


@pytest.fixture
def site(live: LiveServer) -> Iterator[dict[str, Any]]:
    """The lab with OAuth integration `demo` ("Demo OAuth") on a provider on loopback, and
    Mia, a member of the lab and of a second facility (so the top bar has a switcher)."""
    spec = ClientSpec("the-client", "the-secret", [f"{live.url}/oauth/callback"])
    with serve_in_thread(create_provider_app(ProviderConfig(clients=[spec]))) as provider:
        with live.app.app_context():
            session = db.session()
            lab = create_facility(session, slug="lab", name="The Lab")
            other = create_facility(session, slug="annex", name="The Annex")
            mia = create_user(session, email="mia@example.com", name="Mia Member")
            add_member(session, user=mia, facility=lab, role=Role.member)
            add_member(session, user=mia, facility=other, role=Role.member)
            integrations_admin.create_custom(
                session, facility=lab,
                fields=demo_oauth_fields(provider.url, client_id="the-client",
                                         client_secret="the-secret"))
            script = Script(facility_id=lab.id, name="Who am I", source=WHO_AM_I,
                            published=True)
            session.add(script)
            session.commit()
            script_id = script.id
            db.session.remove()
        yield {"live": live, "script_id": script_id}


def grant_states(live: LiveServer) -> list[str]:
    with live.app.app_context():
        states = [grant.state for grant in db.session.query(Grant).all()]
        db.session.remove()
    return states


def decline(page: Any, prompt: Any) -> None:
    """Press the prompt's Sign in and Deny at the provider; the window must close."""
    with page.expect_popup() as opened:
        prompt.locator(".grant-sign-in").click()
    popup = opened.value
    popup.wait_for_url("**/authorize**")
    popup.click("#deny")
    # The window stayed open on its result page, and the prompt said nothing.
    prompt.locator(".grant-failure").wait_for(state="visible")
    if not popup.is_closed():
        popup.wait_for_event("close")


@pytest.mark.parametrize("width", [1280, 390])
def test_a_sign_in_declined_at_the_provider_is_said_in_the_prompt_which_can_try_again(
    browser: Any, site: dict[str, Any], width: int
) -> None:
    live = site["live"]
    page = signed_in(browser, live, "mia@example.com", width=width)
    card = run_script(page, live, "Who am I")
    prompt = page.locator(".grant-prompt")
    prompt.wait_for(timeout=20000)
    decline(page, prompt)
    assert prompt.locator(".grant-failure").inner_text() == DECLINED
    assert prompt.locator(".grant-next").inner_text() == (
        "Who am I is still waiting: try again, or refuse and the script is told you declined.")
    assert prompt.locator(".grant-sign-in").inner_text() == "Try again"
    assert prompt.locator(".grant-refuse").is_visible()  # on a phone too: the bar opened
    # Deliberately: the server leaves a page's prompt pending when the provider is declined
    # (a connect link's is refused, as no page can ask again); the run still waits.
    assert grant_states(live) == ["pending"]
    with live.app.app_context():
        assert db.session.query(Run.status).scalar() in ("waiting_for_grant", "parked")
        db.session.remove()
    fits(page, f"prompt-sign-in-declined-{width}")
    with page.expect_popup() as opened:
        prompt.locator(".grant-sign-in").click()
    popup = opened.value
    popup.wait_for_url("**/authorize**")
    assert prompt.locator(".grant-failure").is_hidden()  # a new try: the last one is over
    popup.click("#approve")
    assert run_result(card) == {"username": "alice"}
    assert prompt.count() == 0
    assert grant_states(live) == ["granted"]
    page.context.close()


def test_refusing_after_a_declined_sign_in_reaches_the_script(
    browser: Any, site: dict[str, Any]
) -> None:
    live = site["live"]
    page = signed_in(browser, live, "mia@example.com", width=390)
    card = run_script(page, live, "Who am I")
    prompt = page.locator(".grant-prompt")
    prompt.wait_for(timeout=20000)
    decline(page, prompt)
    prompt.locator(".grant-refuse").click()
    assert run_result(card) == {"refused": "refused"}  # no_integration_grant, reason refused
    assert prompt.count() == 0
    assert grant_states(live) == ["refused"]
    page.context.close()


CONTROLS = ("#run-page > p > a", "#run-page h1", "#stop-run", "#rerun")


@pytest.mark.parametrize("width", [390, 1280])
def test_a_waiting_prompt_hides_none_of_the_page_it_stays_over(
    browser: Any, site: dict[str, Any], width: int
) -> None:
    live = site["live"]
    runs = signed_in(browser, live, "mia@example.com", width=width)
    runs.goto(f"{live.url}/f/lab/runs")
    runs.locator("body[data-live=yes]").wait_for()  # an open page: the run may ask
    run_id = start_run(runs, site["script_id"])
    page = runs.context.new_page()  # the runs page stays open, so the run keeps asking
    page.goto(f"{live.url}/f/lab/runs/{run_id}")
    prompt = page.locator(".grant-prompt")
    prompt.wait_for(timeout=30000)
    fits(page, f"prompt-waiting-{width}")
    if width < 640:
        # One line: what, Sign in and Refuse. The whole card stuck over the top quarter of
        # the screen (140 px of 900) as the page scrolled under it.
        assert prompt.bounding_box()["height"] < 60
        summary = prompt.locator(".grant-summary")
        assert summary.inner_text() == "Demo OAuth for Who am I"
        assert prompt.locator(".grant-sign-in").is_visible()
        assert prompt.locator(".grant-refuse").is_visible()
        text = prompt.locator(".grant-text")
        assert text.is_hidden()
        summary.click()  # opens for the whole sentence
        assert text.inner_text() == "Who am I wants to use Demo OAuth with your account."
        assert summary.get_attribute("aria-expanded") == "true"
        fits(page, f"prompt-opened-{width}")
        summary.click()
        assert text.is_hidden()
    # A page long enough to scroll, as the run page is with output, so that the prompt stays
    # in view over it.
    page.evaluate("""() => {
        const spacer = document.createElement('div');
        spacer.id = 'spacer';
        spacer.style.height = '3000px';
        document.querySelector('main').append(spacer);
    }""")
    for selector in CONTROLS:
        # Scrolled to (a link, a search) and tabbed to, each lands below the prompt.
        page.evaluate("(s) => document.querySelector(s).scrollIntoView()", selector)
        assert page.evaluate("window.scrollY") > 0, selector
        assert lands_on(page, selector), selector
        if selector != "#run-page h1":
            page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
            page.focus(selector)
            assert lands_on(page, selector), selector
    page.evaluate("document.getElementById('spacer').remove()")
    if width < 640:
        page.click(".nav-toggle-label")
    page.click(".switcher summary")  # its list opens over the prompt, not under it
    for link in ("/f/lab/scripts", "/f/annex/scripts"):
        assert lands_on(page, f".switcher a[href='{link}']"), link
    shot(page, f"prompt-under-the-switcher-{width}")
    page.context.close()


def focused(page: Any) -> str:
    """What holds the keyboard's focus: its class, or `body` when nothing does."""
    return str(page.evaluate(
        "document.activeElement === document.body ? 'body' : document.activeElement.className"))


def test_the_keyboard_keeps_its_place_through_a_run_and_its_prompt(
    browser: Any, site: dict[str, Any]
) -> None:
    live = site["live"]
    page = signed_in(browser, live, "mia@example.com")
    page.goto(f"{live.url}/f/lab/scripts")
    card = page.locator(".script-card", has_text="Who am I")
    prompt = page.locator(".grant-prompt")
    # Run, disabled while its run goes on, dropped the focus to the page's top: Cancel holds
    # it (the run's prompt takes it from there; Escape gives it back), and gives it back to
    # Run when the run ends.
    card.locator(".run-script").focus()
    page.keyboard.press("Enter")
    prompt.wait_for(timeout=20000)
    page.wait_for_function("document.activeElement.classList.contains('grant-sign-in')")
    page.keyboard.press("Escape")
    assert focused(page) == "cancel-run"
    page.keyboard.press("Enter")
    card.locator(".run-status", has_text="cancelled").wait_for()
    page.wait_for_function("document.activeElement.classList.contains('run-script')")
    # Refuse, from the keyboard: the prompt goes, and the focus goes back where it came
    # from into the prompt, not to the page's top. (Run while typing in the card's input:
    # the prompt leaves the keyboard there.)
    card.locator(".run-input").focus()
    card.locator(".run-form").evaluate("(form) => form.requestSubmit()")
    prompt.wait_for(timeout=20000)
    assert "run-input" in focused(page).split()
    for _ in range(40):
        page.keyboard.press("Shift+Tab")
        if focused(page) == "grant-refuse":
            break
    assert focused(page) == "grant-refuse"
    page.keyboard.press("Enter")
    assert run_result(card) == {"refused": "refused"}
    assert prompt.count() == 0
    # Shift+Tab came into the prompt from the page's first control, the card's input.
    assert "run-input" in focused(page).split()
    page.context.close()
