"""The sign-in prompt from the keyboard and a screen reader's side, in Debian's Chromium
(DESIGN §4): a prompt is announced always and takes the keyboard only from nowhere or from
the controls of the run that asks; Escape or Later hides it without answering (the run waits
on) behind a "N sign-ins waiting" control that brings it back; the focus goes back where it
was after Sign in, Refuse and Later; several prompts, and a phone's one-line bar."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from app import db
from app.devprovider import ClientSpec, ProviderConfig, create_provider_app, serve_in_thread
from app.models import Role, Run, Script
from app.services import integrations_admin
from app.testing import LiveServer
from tests.conftest import (
    add_member,
    create_facility,
    create_integration,
    create_user,
    demo_oauth_fields,
)
from tests.e2e.people import fits, lands_on, signed_in
from tests.e2e.test_grant_journeys import run_result
from tests.e2e.test_prompt_review import WHO_AM_I, focused, grant_states
from tests.e2e.test_runs_page import start_run

pytestmark = pytest.mark.browser
NEEDS = """
try:
    integrations.get("{key}", "/x")
    result = "called"
except integrations.NoIntegrationGrant as refused:
    result = {{"refused": refused.reason}}
"""
ANNOUNCED = (
    "Sign-in needed: Who am I wants to use Demo OAuth with your account. Sign in or"
    " Refuse at the top of the page."
)


@pytest.fixture
def site(live: LiveServer) -> Iterator[dict[str, Any]]:
    """The lab with OAuth integration `demo` on a provider on loopback and two API-key
    integrations `alpha` and `beta`; a published script for each (their ids by name);
    Mia, a member, and Sam, a scripter."""
    spec = ClientSpec("the-client", "the-secret", [f"{live.url}/oauth/callback"])
    with serve_in_thread(create_provider_app(ProviderConfig(clients=[spec]))) as provider:
        with live.app.app_context():
            session = db.session()
            lab = create_facility(session, slug="lab", name="The Lab")
            for email, name, role in (
                ("mia@example.com", "Mia", Role.member),
                ("sam@example.com", "Sam", Role.scripter),
            ):
                add_member(
                    session,
                    user=create_user(session, email=email, name=name),
                    facility=lab,
                    role=role,
                )
            integrations_admin.create_custom(
                session,
                facility=lab,
                fields=demo_oauth_fields(
                    provider.url, client_id="the-client", client_secret="the-secret"
                ),
            )
            create_integration(session, facility=lab, key="alpha", name="Alpha API")
            create_integration(session, facility=lab, key="beta", name="Beta API")
            scripts = [Script(facility_id=lab.id, name="Who am I", source=WHO_AM_I, published=True)]
            scripts += [
                Script(
                    facility_id=lab.id,
                    name=f"Needs {key}",
                    source=NEEDS.format(key=key),
                    published=True,
                )
                for key in ("alpha", "beta")
            ]
            session.add_all(scripts)
            session.commit()
            ids = {script.name: script.id for script in scripts}
            db.session.remove()
        yield {"live": live, "ids": ids}


def wait_focus(page: Any, name: str) -> None:
    """Until the element with class `name` holds the keyboard's focus."""
    page.wait_for_function(
        "(name) => document.activeElement.classList.contains(name)", arg=name, timeout=30000
    )


def tab_to(page: Any, name: str, key: str = "Shift+Tab") -> None:
    """Press `key` until the element with class `name` holds the focus."""
    for _ in range(40):
        page.keyboard.press(key)
        if name in focused(page).split():
            return
    raise AssertionError(f"{key} never reached .{name}; at {focused(page)!r}")


def focused_prompt(page: Any) -> str:
    """The words of the prompt that holds the focus."""
    return str(page.evaluate("document.activeElement.closest('.grant-prompt').innerText"))


def run_status(live: LiveServer) -> set[str]:
    with live.app.app_context():
        statuses = set(db.session.scalars(select(Run.status)).all())
        db.session.remove()
    return statuses


def test_escape_hides_the_prompt_without_refusing_and_the_waiting_control_brings_it_back(
    browser: Any, site: dict[str, Any]
) -> None:
    live = site["live"]
    page = signed_in(browser, live, "mia@example.com")
    page.goto(f"{live.url}/f/lab/scripts")
    card = page.locator(".script-card", has_text="Who am I")
    prompt = page.locator(".grant-prompt")
    waiting = page.locator(".prompts-waiting")
    # Run from the keyboard: Cancel holds the focus, then the run's prompt takes it, and
    # is said in one sentence.
    card.locator(".run-script").focus()
    page.keyboard.press("Enter")
    wait_focus(page, "grant-sign-in")
    assert page.locator("#prompt-news").inner_text() == ANNOUNCED
    assert prompt.get_attribute("role") == "alertdialog"
    # Its order: Sign in, Refuse, Later.
    page.keyboard.press("Tab")
    assert focused(page) == "grant-refuse"
    page.keyboard.press("Tab")
    assert focused(page) == "grant-later"
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert focused(page) == "grant-sign-in primary"
    # Escape: the prompt hides, unanswered; the focus goes back to the run's Cancel.
    page.keyboard.press("Escape")
    assert prompt.is_hidden()
    assert focused(page) == "cancel-run"
    assert waiting.inner_text() == "1 sign-in waiting"
    assert grant_states(live) == ["pending"]
    assert run_status(live) <= {"waiting_for_grant", "parked"}
    # The waiting control, reached by the keyboard, brings it back to its Sign in.
    tab_to(page, "prompts-waiting")
    page.keyboard.press("Enter")
    assert prompt.is_visible()
    assert focused(page) == "grant-sign-in primary"
    assert waiting.is_hidden()
    # Later does as Escape.
    tab_to(page, "grant-later", "Tab")
    page.keyboard.press("Enter")
    assert prompt.is_hidden()
    assert focused(page) == "cancel-run"
    assert grant_states(live) == ["pending"]
    # Hidden on that page only: another page shows it, and leaves the keyboard alone (the
    # prompt took it once in this tab).
    page.goto(f"{live.url}/f/lab/runs")
    prompt.wait_for(timeout=20000)
    assert waiting.is_hidden()
    assert focused(page) == "body"
    page.goto(f"{live.url}/f/lab/scripts")
    prompt.wait_for(timeout=20000)
    tab_to(page, "grant-refuse", "Tab")
    page.keyboard.press("Enter")
    prompt.wait_for(state="detached")
    assert grant_states(live) == ["refused"]
    page.context.close()


def test_a_prompt_is_announced_but_leaves_the_keyboard_in_the_editor(
    browser: Any, site: dict[str, Any]
) -> None:
    live = site["live"]
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/editor/{site['ids']['Who am I']}")
    source = page.locator(".cm-content")
    source.click()
    page.keyboard.press("Control+End")
    page.keyboard.press("Control+Enter")  # runs the draft, from the editor
    prompt = page.locator(".grant-prompt")
    prompt.wait_for(timeout=30000)
    page.locator("#prompt-news", has_text=ANNOUNCED).wait_for(state="attached")
    assert page.evaluate("document.activeElement.classList.contains('cm-content')")
    page.keyboard.type("# typed on")
    assert "# typed on" in source.inner_text()
    # Escape belongs to the editor there (its completions): the prompt stays.
    page.keyboard.press("Escape")
    assert prompt.is_visible()
    prompt.locator(".grant-refuse").click()
    prompt.wait_for(state="detached", timeout=30000)
    assert grant_states(live) == ["refused"]
    page.context.close()


def test_after_signing_in_from_the_keyboard_the_focus_goes_back_to_the_run(
    browser: Any, site: dict[str, Any]
) -> None:
    live = site["live"]
    page = signed_in(browser, live, "mia@example.com")
    page.goto(f"{live.url}/f/lab/scripts")
    card = page.locator(".script-card", has_text="Who am I")
    card.locator(".run-script").focus()
    page.keyboard.press("Enter")
    wait_focus(page, "grant-sign-in")
    with page.expect_popup() as opened:
        page.keyboard.press("Enter")
    popup = opened.value
    popup.wait_for_url("**/authorize**")
    popup.click("#approve")
    assert run_result(card) == {"username": "alice"}
    # Cancel, where the prompt took the focus from, then Run when the run ended.
    wait_focus(page, "run-script")
    page.context.close()


def test_several_prompts_hide_one_by_one_and_come_back_together(
    browser: Any, site: dict[str, Any]
) -> None:
    live, ids = site["live"], site["ids"]
    page = signed_in(browser, live, "mia@example.com")
    page.goto(f"{live.url}/f/lab/scripts")
    prompts = page.locator(".grant-prompt")
    waiting = page.locator(".prompts-waiting")
    alpha = page.locator(".script-card", has_text="Needs alpha")
    alpha.locator(".run-script").focus()
    page.keyboard.press("Enter")
    wait_focus(page, "grant-sign-in")
    # A second prompt while the first holds the keyboard: shown and said, not focused.
    start_run(page, ids["Needs beta"])
    prompts.nth(1).wait_for(timeout=30000)
    page.locator("#prompt-news", has_text="Needs beta wants to use Beta API").wait_for(
        state="attached"
    )
    assert focused_prompt(page).startswith("Needs alpha wants to use Alpha API")
    # Escape hides one at a time: the next prompt, then back to the run's Cancel.
    page.keyboard.press("Escape")
    assert focused_prompt(page).startswith("Needs beta")
    page.keyboard.press("Escape")
    assert focused(page) == "cancel-run"
    assert alpha.evaluate("(card) => card.contains(document.activeElement)")  # its own
    assert waiting.inner_text() == "2 sign-ins waiting"
    assert (
        page.locator("#prompt-news")
        .inner_text()
        .startswith("Hidden: Needs beta waits for your sign-in until ")
    )
    fits(page, "prompts-hidden-1280")
    # A new prompt shows, even with others hidden; it is another run's, so the keyboard
    # stays on Cancel.
    start_run(page, ids["Who am I"])
    new = page.locator(".grant-prompt:not([hidden])")
    new.wait_for(timeout=30000)
    assert "Who am I wants to use Demo OAuth" in new.inner_text()
    assert focused(page) == "cancel-run"
    assert waiting.inner_text() == "2 sign-ins waiting"
    # The control shows the hidden two again, the first one focused.
    tab_to(page, "prompts-waiting")
    page.keyboard.press("Enter")
    assert page.locator(".grant-prompt:not([hidden])").count() == 3
    assert focused_prompt(page).startswith("Needs alpha")
    assert grant_states(live) == ["pending"] * 3
    # Refuse all three from the keyboard: each gives the focus to the next.
    for _ in range(3):
        page.keyboard.press("Tab")
        assert focused(page) == "grant-refuse"
        count = prompts.count()
        page.keyboard.press("Enter")
        page.wait_for_function(
            "(n) => document.querySelectorAll('.grant-prompt').length < n", arg=count
        )
        if prompts.count():
            wait_focus(page, "grant-sign-in")
    assert sorted(grant_states(live)) == ["refused"] * 3
    assert run_result(alpha) == {"refused": "refused"}
    page.context.close()


def ring_in_view(page: Any) -> bool:
    """Whether the focused element shows a solid ring of 3 px that nothing clips: the prompts
    box scrolls (overflow), so a ring past its edge would be cut off."""
    return bool(
        page.evaluate("""() => {
        const node = document.activeElement, style = getComputedStyle(node);
        if (style.outlineStyle !== 'solid' || style.outlineWidth !== '3px') return false;
        const out = 3 + parseFloat(style.outlineOffset), box = node.getBoundingClientRect();
        const clip = document.getElementById('prompts').getBoundingClientRect();
        return box.left - out >= clip.left && box.right + out <= clip.right
            && box.top - out >= clip.top && box.bottom + out <= clip.bottom
            && box.right + out <= window.innerWidth;
    }""")
    )


def test_on_a_phone_the_prompt_bar_keeps_later_and_shows_where_the_keyboard_is(
    browser: Any, site: dict[str, Any]
) -> None:
    live = site["live"]
    page = signed_in(browser, live, "mia@example.com", width=390, height=844)
    # A browser that blocks the sign-in window: the same-tab link takes the keyboard.
    page.add_init_script("window.open = () => null;")
    page.goto(f"{live.url}/f/lab/scripts")
    card = page.locator(".script-card", has_text="Who am I")
    prompt = page.locator(".grant-prompt")
    card.locator(".run-script").focus()
    page.keyboard.press("Enter")
    wait_focus(page, "grant-sign-in")
    assert prompt.bounding_box()["height"] < 60  # still one line, Later on it
    assert prompt.locator(".grant-later").is_visible()
    fits(page, "prompt-keyboard-390")
    # Its order, each with a ring in view: what (opens it), Sign in, Refuse, Later.
    page.keyboard.press("Shift+Tab")
    order = [focused(page)]
    assert ring_in_view(page)
    for _ in range(3):
        page.keyboard.press("Tab")
        order.append(focused(page))
        assert ring_in_view(page), order
    assert order == ["grant-summary", "grant-sign-in primary", "grant-refuse", "grant-later"]
    page.keyboard.press("Escape")
    waiting = page.locator(".prompts-waiting")
    assert waiting.inner_text() == "1 sign-in waiting"
    assert focused(page) == "cancel-run"
    assert lands_on(page, ".prompts-waiting")
    fits(page, "prompt-hidden-390")
    tab_to(page, "prompts-waiting")
    assert ring_in_view(page)
    page.keyboard.press("Enter")
    assert focused(page) == "grant-sign-in primary"
    page.keyboard.press("Enter")  # the window is blocked
    assert focused(page) == "grant-fallback"
    assert prompt.locator(".grant-fallback").is_visible()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # Refuse
    assert run_result(card) == {"refused": "refused"}
    wait_focus(page, "run-script")
    page.context.close()
