"""The Management page's webhook controls past the server's send limits, in Debian's
Chromium: with 2 sends a minute per endpoint and 3 per facility, "Send test" and
"Redeliver" past either are refused (429) and the page says so in the API's words, with
when to try again, readable at 1280 px; nothing more is sent, and the page goes on working."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import db
from app.testing import LiveServer
from tests.conftest import close_live, make_app
from tests.e2e.people import admin_of_lab, fits
from tests.listener import Listener

pytestmark = pytest.mark.browser
LIMITS = {
    "WEBHOOK_SENDS_PER_ENDPOINT": "2 per minute",
    "WEBHOOK_SENDS_PER_FACILITY": "3 per minute",
}


@pytest.fixture
def limited_page(browser: Any, tmp_path: Path) -> Iterator[Any]:
    """The Management page of a live server with the limits above, as its lab's admin."""
    live = LiveServer(make_app(tmp_path, **LIMITS))
    try:
        page = admin_of_lab(browser, live)
        page.goto(f"{live.url}/f/lab/manage")
        yield page
        page.context.close()
    finally:
        close_live(live)
        db.session.remove()


def _add_endpoint(page: Any, url: str) -> Any:
    """Register `url` in the page's form; its row."""
    section = page.locator("#webhooks")
    before = section.locator("#webhook-endpoints tbody tr").count()
    section.locator("#add-webhook [name=url]").fill(url)
    section.locator("#add-webhook button[type=submit]").click()
    row = section.locator("#webhook-endpoints tbody tr").nth(before)
    row.wait_for(state="visible")
    return row


def _sent(page: Any, row: Any, listener: Listener) -> str:
    """Press "Send test" on `row`; the id of the delivery the receiver took."""
    row.locator(".test-webhook").click()
    page.locator(".toast.ok").filter(has_text="Test event sent").last.wait_for()
    return listener.next().headers["Scriptbox-Delivery"]


def _refused(page: Any, button: Any, scope: str) -> None:
    """Press `button` past a limit: the API answers 429, and the page shows its words, which
    say when to try again, in an error toast that is readable whole at the page's width."""
    # Toasts of earlier presses (the same words, maybe) are marked, to find this press's.
    page.evaluate("document.querySelectorAll('.toast').forEach((t) => { t.dataset.seen = 1; })")
    with page.expect_response(lambda answer: answer.request.method == "POST") as answered:
        button.click()
    answer = answered.value
    assert answer.status == 429
    seconds = int(answer.headers["retry-after"])
    message = answer.json()["error"]["message"]
    assert re.fullmatch(
        rf"Too many test and redelivery sends {scope} \(at most \d per 1 minute\)\. "
        rf"Try again in {seconds} s\.",
        message,
    ), message
    toast = page.locator(".toast.error:not([data-seen])")
    toast.wait_for()
    assert toast.inner_text() == message
    assert toast.get_attribute("role") == "status"
    assert toast.evaluate("""(node) => {
        const box = node.getBoundingClientRect();
        return node.scrollWidth <= node.clientWidth && box.left >= 0 && box.top >= 0
            && box.right <= innerWidth && box.bottom <= innerHeight
            && document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2)
                ?.closest(".toast") === node;
    }""")
    assert button.is_enabled()  # it may be pressed again later


def test_sends_past_the_limits_are_refused_in_words_and_the_page_goes_on(
    limited_page: Any, listener: Listener
) -> None:
    page = limited_page
    first = _add_endpoint(page, listener.url)
    first_sent = [_sent(page, first, listener), _sent(page, first, listener)]

    _refused(page, first.locator(".test-webhook"), "to this endpoint")
    fits(page, "management-webhook-limited-1280")
    # A redelivery is a send too: refused likewise, from the delivery log.
    delivered = page.locator(
        f'#webhook-deliveries tr[data-delivery-id="{first_sent[0]}"][data-status="delivered"]'
    )
    delivered.wait_for(state="visible")
    _refused(page, delivered.locator(".redeliver"), "to this endpoint")

    # Another endpoint has a count of its own, under the facility's (3 a minute).
    second = _add_endpoint(page, f"{listener.url}/second")
    _sent(page, second, listener)
    _refused(page, second.locator(".test-webhook"), "from this facility")
    assert listener.received.empty()  # nothing refused was sent

    # The page goes on working: the log shows the three sends and opens their attempts.
    rows = page.locator("#webhook-deliveries tbody tr[data-delivery-id]")
    page.wait_for_function(
        "() => document.querySelectorAll("
        "'#webhook-deliveries tr[data-delivery-id][data-status=delivered]').length === 3"
    )
    assert rows.count() == 3
    delivered.locator(".show-attempts").click()
    attempts = page.locator("#webhook-deliveries .attempts-row table.attempts tbody tr")
    attempts.first.wait_for(state="visible")
    assert attempts.first.locator("td").nth(3).inner_text() == "HTTP 200"
    first.locator(".pause-webhook").click()
    first.locator(".endpoint-state").filter(has_text="paused").wait_for()
