"""Browser helpers for the experience tests: sign a user in at a width, check the page fits."""

from __future__ import annotations

from typing import Any

from app.testing import LiveServer
from tests.conftest import PASSWORD
from tests.e2e.conftest import shot

WIDTHS = (1280, 375)


def signed_in(
    browser: Any, live: LiveServer, email: str, *, width: int = 1280, timezone: str | None = None
) -> Any:
    """A new page of a browser context signed in as `email`, `width` pixels wide, its clock
    in the IANA zone `timezone` (the machine's when None)."""
    context = browser.new_context(viewport={"width": width, "height": 900}, timezone_id=timezone)
    page = context.new_page()
    page.goto(f"{live.url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def fits(page: Any, name: str) -> None:
    """Screenshot the page and check it does not scroll sideways at its width."""
    shot(page, name)
    width = page.viewport_size["width"]
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, f"{name}: the page is {scroll_width}px wide at {width}px"
