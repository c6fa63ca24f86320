"""Settings → API tokens in a real browser: a token is made once however often the button
is pressed, listed at once, and revoked in place; a blank name or a refusal is said."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from app import db
from app.models import ApiToken
from app.testing import LiveServer
from tests.conftest import create_user
from tests.e2e.people import fits, signed_in

pytestmark = pytest.mark.browser


def tokens(live: LiveServer) -> list[str]:
    with live.app.app_context():
        names = [token.name for token in db.session.query(ApiToken).order_by(ApiToken.id)]
        db.session.remove()
    return names


def test_a_token_is_made_once_listed_at_once_and_revoked_in_place(
    browser: Any, live: LiveServer
) -> None:
    with live.app.app_context():
        create_user(db.session(), email="tess@example.com")
        db.session.commit()
        db.session.remove()
    page = signed_in(browser, live, "tess@example.com")
    page.goto(f"{live.url}/settings/tokens")
    # None yet: said in words, not as an empty table's headings.
    none = page.locator("#no-tokens", has_text="No tokens yet")
    assert none.is_visible() and page.locator("#tokens").is_hidden()

    page.fill("input[name=name]", "   ")
    page.click("#new-token button[type=submit]")
    assert page.locator("#token-error").inner_text() == "Name the token: what it is for."
    assert tokens(live) == []

    page.fill("input[name=name]", "nightly export")
    page.dblclick("#new-token button[type=submit]")
    page.locator("#token-shown").wait_for(state="visible")
    assert "sbx_" in page.locator("#token-shown").inner_text()
    row = page.locator("#tokens tbody tr", has_text="nightly export")
    row.wait_for()
    assert tokens(live) == ["nightly export"]
    assert page.locator("#tokens tbody tr").count() == 1
    assert page.locator("#token-error").is_hidden()
    assert none.is_hidden() and page.locator("#tokens").is_visible()

    # Revoking asks first: one stray click used to cut off a program at once.
    page.once("dialog", lambda dialog: dialog.dismiss())
    with page.expect_event("dialog") as asked:
        row.locator(".revoke-token").click()
    assert asked.value.message == (
        "Revoke the token “nightly export”? Programs that use it are refused from now on."
    )
    assert tokens(live) == ["nightly export"]
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator(".revoke-token").click()
    row.wait_for(state="detached")
    assert tokens(live) == []
    assert none.is_visible() and page.locator("#tokens").is_hidden()
    page.context.close()


def test_the_token_list_keeps_its_words_whole_on_a_phone(browser: Any, live: LiveServer) -> None:
    with live.app.app_context():
        create_user(db.session(), email="tess@example.com")
        db.session.commit()
        db.session.remove()
    page = signed_in(browser, live, "tess@example.com", width=375)
    page.goto(f"{live.url}/settings/tokens")
    page.fill("input[name=name]", "explore")
    page.click("#new-token button[type=submit]")
    page.locator("#tokens tbody tr").wait_for()
    page.reload()  # the listed row and the served one alike
    for cell in (page.locator("#tokens tbody td").first, page.locator(".revoke-token")):
        # Squeezed into five columns, "explore" read "explor/e" and Revoke "Rev/oke".
        lines = cell.evaluate(
            "(node) => { const range = document.createRange(); range.selectNodeContents(node);"
            " return range.getClientRects().length; }")
        assert lines == 1, cell
    fits(page, "settings-tokens-375")
    page.context.close()


@pytest.mark.parametrize("width", [1280, 375])
def test_the_settings_pages_link_to_one_another(browser: Any, live: LiveServer, width: int) -> None:
    # API tokens and Password linked to no other Settings page: Password was reached only
    # through Integrations, after the top bar's Settings.
    with live.app.app_context():
        create_user(db.session(), email="tess@example.com")
        db.session.commit()
        db.session.remove()
    page = signed_in(browser, live, "tess@example.com", width=width)
    pages = {"Integrations": "/settings/integrations", "API tokens": "/settings/tokens",
             "Password": "/settings/password"}
    for here, path in pages.items():
        page.goto(f"{live.url}{path}")
        links = page.locator("main .settings-links")
        assert links.locator("[aria-current=page]").inner_text() == here
        assert {link.inner_text(): link.get_attribute("href")
                for link in links.locator("a").all()} == {
            label: href for label, href in pages.items() if label != here}
        for link in links.locator("a").all():  # tall enough to tap
            assert link.bounding_box()["height"] >= 24
        fits(page, f"settings-links-{here.replace(' ', '-').lower()}-{width}")
    page.context.close()


def test_a_new_token_is_copied_whole_from_the_keyboard(browser: Any, live: LiveServer) -> None:
    # The token was the end of a sentence in one paragraph, with no Copy button: a
    # double-click selected only the piece between two of its hyphens, and a program
    # given that piece was refused.
    with live.app.app_context():
        create_user(db.session(), email="tess@example.com")
        db.session.commit()
        db.session.remove()
    page = signed_in(browser, live, "tess@example.com")
    page.add_init_script("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
    page.goto(f"{live.url}/settings/tokens")
    page.fill("input[name=name]", "nightly export")
    page.press("input[name=name]", "Enter")
    page.locator("#token-shown").wait_for(state="visible")
    assert page.evaluate("document.activeElement.id") == "copy-token"
    page.keyboard.press("Enter")  # no clipboard on plain http: the token is selected
    page.locator(".toast", has_text="press Ctrl+C").wait_for()
    token = page.evaluate("getSelection().toString()")
    assert token == page.locator("#token-value").inner_text() and token.startswith("sbx_")
    assert page.locator("#token-value").evaluate("n => getComputedStyle(n).userSelect") == "all"
    me = requests.get(f"{live.url}/api/me", headers={"Authorization": f"Bearer {token}"},
                      timeout=30)
    assert me.status_code == 200  # the whole token, not a piece of it
    page.context.close()
