"""An admin's webhook controls on the Management page in a real browser: send a test event
(a loopback receiver checks its signature) and watch it in the log, in flight then
delivered; open its attempts; redeliver it; rotate the secret (shown once) and see the next
test signed with the new one; edit the endpoint; pause and resume it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from app.models.webhooks import WEBHOOK_EVENTS
from app.services import webhooks
from app.testing import LiveServer
from tests.e2e.conftest import shot
from tests.e2e.people import admin_of_lab
from tests.listener import Answer, Listener, Received

pytestmark = pytest.mark.browser


@pytest.fixture
def admin_page(browser: Any, live: LiveServer) -> Iterator[Any]:
    """A browser page signed in as the admin of facility `lab`; dialogs are accepted."""
    page = admin_of_lab(browser, live)
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    page.context.close()


def _verified(secret: str, got: Received) -> bool:
    return webhooks.verify(
        secret, got.headers["Scriptbox-Timestamp"], got.body, got.headers["Scriptbox-Signature"]
    )


def test_test_event_attempts_redelivery_rotation_edit_and_pause(
    admin_page: Any, live: LiveServer, listener: Listener
) -> None:
    page = admin_page
    questions: list[str] = []
    page.on("dialog", lambda dialog: questions.append(dialog.message))
    page.goto(f"{live.url}/f/lab/manage")
    section = page.locator("#webhooks")
    form = section.locator("#add-webhook")
    form.locator("[name=url]").fill(listener.url)
    form.locator("button[type=submit]").click()
    row = section.locator("#webhook-endpoints tbody tr")
    row.wait_for(state="visible")
    secret_box = section.locator("#webhook-secret")
    secret = secret_box.locator(".secret").inner_text()
    assert row.locator(".endpoint-state").inner_text() == "active"
    # grant.required is opt-in (it makes API runs that need a sign-in wait for the app),
    # so the form leaves it unticked and says why beside it.
    assert row.locator(".endpoint-events").inner_text() == ", ".join(
        event for event in WEBHOOK_EVENTS if event != "grant.required"
    )
    assert "instead of failing at once" in form.locator("#grant-required-hint").inner_text()

    # Send test: the receiver holds its answer while the log shows the attempt in flight
    # (not the sender's claim lease as a "next try").
    release = threading.Event()
    listener.answers.append(Answer(200, release=release))
    row.locator(".test-webhook").click()
    ping = listener.next()
    try:
        assert _verified(secret, ping) and ping.headers["Scriptbox-Event"] == "ping"
        sending = page.locator("#webhook-deliveries tr[data-sending]")
        sending.wait_for(state="visible")
        assert "sending attempt 1 of 8" in sending.locator(".delivery-status").inner_text()
        assert sending.locator("time.next-try").count() == 0
        shot(page, "management-webhook-sending")
    finally:
        release.set()
    delivered = page.locator(
        f'#webhook-deliveries tr[data-delivery-id="{ping.headers["Scriptbox-Delivery"]}"]'
        '[data-status="delivered"]'
    )
    delivered.wait_for(state="visible")

    # Its attempts, opened under it.
    delivered.locator(".show-attempts").click()
    attempts = page.locator("#webhook-deliveries .attempts-row table.attempts tbody tr")
    attempts.first.wait_for(state="visible")
    assert attempts.count() == 1
    cells = attempts.first.locator("td").all_inner_texts()
    assert cells[0] == "1" and cells[3] == "HTTP 200" and cells[2].endswith(" ms")
    assert delivered.locator(".show-attempts").get_attribute("aria-expanded") == "true"

    # Redeliver: a new delivery of the same event, signed, and in the log as a redelivery.
    delivered.locator(".redeliver").click()
    again = listener.next()
    assert _verified(secret, again) and again.body == ping.body
    assert again.headers["Scriptbox-Delivery"] != ping.headers["Scriptbox-Delivery"]
    redelivered = page.locator(
        f'#webhook-deliveries tr[data-delivery-id="{again.headers["Scriptbox-Delivery"]}"]'
        '[data-status="delivered"]'
    )
    redelivered.wait_for(state="visible")
    assert "(redelivery)" in redelivered.inner_text()

    # Rotate: asked first, the new secret shown once, the next test signed with it.
    row.locator(".rotate-webhook").click()
    secret_box.locator(".secret-kind").filter(has_text="new signing secret").wait_for()
    rotated = secret_box.locator(".secret").inner_text()
    assert rotated.startswith("whsec_") and rotated != secret
    assert questions[-1].startswith(f"Rotate the signing secret of {listener.url}?")
    row.locator(".test-webhook").click()
    signed = listener.next()
    assert _verified(rotated, signed) and not _verified(secret, signed)
    assert json.loads(signed.body)["event"] == "ping"

    # Edit: the form opens under the row with what it has; a refused URL says why.
    row.locator(".edit-webhook").click()
    edit = section.locator("#edit-webhook")
    edit.wait_for(state="visible")
    assert edit.locator("[name=url]").input_value() == listener.url
    edit.locator("[name=url]").fill("https://127.0.0.2/in")
    edit.locator("button[type=submit]").click()
    error = edit.locator(".form-error")
    error.wait_for(state="visible")
    assert error.inner_text().startswith("url: 127.0.0.2 is a private or loopback address")
    edit.locator("[name=url]").fill(listener.url)
    edit.locator('input[value="run.finished"]').uncheck()
    edit.locator("button[type=submit]").click()
    edit.wait_for(state="hidden")
    assert row.locator(".endpoint-events").inner_text() == ", ".join(
        event for event in WEBHOOK_EVENTS if event not in ("run.finished", "grant.required"))

    # Pause: said on the row; a test is refused in words; resume.
    row.locator(".pause-webhook").click()
    row.locator(".endpoint-state").filter(has_text="paused").wait_for()
    assert row.locator(".pause-webhook").inner_text() == "Resume"
    shot(page, "management-webhook-paused")
    row.locator(".test-webhook").click()
    page.locator(".toast.error").filter(
        has_text="the endpoint is paused: resume it to send it a test event"
    ).wait_for()
    row.locator(".pause-webhook").click()
    row.locator(".endpoint-state").filter(has_text="active").wait_for()
    assert row.locator(".pause-webhook").inner_text() == "Pause"
    assert listener.received.empty()  # nothing was sent while paused


# The focused control: its row's endpoint or delivery id, and its class (or its name).
FOCUS = (
    "() => { const a = document.activeElement;"
    " const row = a?.closest('tr[data-endpoint-id], tr[data-delivery-id]');"
    " return [row?.dataset.deliveryId ?? row?.dataset.endpointId ?? null,"
    " a?.name || a?.className || a?.tagName]; }"
)


def test_the_keyboard_stays_on_the_webhook_controls(
    admin_page: Any, live: LiveServer, listener: Listener
) -> None:
    """Each control pressed with the keyboard keeps the focus there, or on the control that
    comes next: a button disabled while its request ran, a log drawn anew and a removed row
    dropped it to the page's top, so Tab started again from the top bar."""
    page = admin_page
    page.set_default_timeout(30_000)  # a loaded 2-core CI host took over 10 s once

    def focus_on(row_id: str | None, control: str) -> None:
        page.wait_for_function(
            f"([row, control]) => {{ const [r, c] = ({FOCUS})();"
            " return r === row && c.split(' ').includes(control); }",
            arg=[row_id, control],
        )

    page.goto(f"{live.url}/f/lab/manage")
    form = page.locator("#add-webhook")
    rows = page.locator("#webhook-endpoints tbody tr")
    for added in range(2):
        form.locator("[name=url]").fill(listener.url)
        form.locator("button[type=submit]").focus()
        page.keyboard.press("Enter")
        rows.nth(added).wait_for()  # the button had the focus before: wait for the answer
        focus_on(None, "BUTTON")
    assert rows.count() == 2
    first, second = (rows.nth(i).get_attribute("data-endpoint-id") for i in range(2))
    row = page.locator(f"#webhook-endpoints tr[data-endpoint-id='{first}']")

    row.locator(".pause-webhook").focus()
    page.keyboard.press("Enter")
    row.locator(".endpoint-state").filter(has_text="paused").wait_for()
    focus_on(first, "pause-webhook")
    page.keyboard.press("Enter")
    row.locator(".endpoint-state").filter(has_text="active").wait_for()
    focus_on(first, "pause-webhook")

    row.locator(".rotate-webhook").focus()
    page.keyboard.press("Enter")
    page.locator("#webhook-secret .secret-kind").filter(has_text="new signing secret").wait_for()
    focus_on(first, "rotate-webhook")

    row.locator(".edit-webhook").focus()
    page.keyboard.press("Enter")
    focus_on(None, "url")
    page.locator("#edit-webhook .cancel-edit").focus()
    page.keyboard.press("Enter")
    focus_on(first, "edit-webhook")
    page.keyboard.press("Enter")
    page.locator("#edit-webhook button[type=submit]").focus()
    page.keyboard.press("Enter")
    page.locator("#edit-webhook").wait_for(state="hidden")
    focus_on(first, "edit-webhook")

    row.locator(".test-webhook").focus()
    page.keyboard.press("Enter")
    ping = listener.next()
    focus_on(first, "test-webhook")
    delivery = ping.headers["Scriptbox-Delivery"]
    sent = page.locator(
        f'#webhook-deliveries tr[data-delivery-id="{delivery}"][data-status="delivered"]'
    )
    sent.wait_for()
    sent.locator(".redeliver").focus()
    page.keyboard.press("Enter")
    again = listener.next()
    page.locator(
        f'#webhook-deliveries tr[data-delivery-id="{again.headers["Scriptbox-Delivery"]}"]'
        '[data-status="delivered"]'
    ).wait_for()
    focus_on(delivery, "redeliver")

    row.locator(".remove-webhook").focus()
    page.keyboard.press("Enter")
    row.wait_for(state="detached")
    focus_on(second, "remove-webhook")
    page.keyboard.press("Enter")
    page.locator("#no-webhooks").wait_for()
    focus_on(None, "url")


def test_a_new_signing_secret_is_copied_whole(
    admin_page: Any, live: LiveServer, listener: Listener
) -> None:
    # The secret, shown once, had no Copy button: a double-click selected only the piece
    # between two of its hyphens, and a receiver set up with it refused every delivery.
    page = admin_page
    page.add_init_script("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
    page.goto(f"{live.url}/f/lab/manage")
    form = page.locator("#add-webhook")
    form.locator("[name=url]").fill(listener.url)
    form.locator("button[type=submit]").click()
    box = page.locator("#webhook-secret")
    box.wait_for(state="visible")
    secret = box.locator(".secret").inner_text()
    box.locator(".copy-secret").click()  # no clipboard on plain http: the secret is selected
    page.locator(".toast", has_text="press Ctrl+C").wait_for()
    assert page.evaluate("getSelection().toString()") == secret
    assert secret.startswith("whsec_")
    assert box.locator(".secret").evaluate("n => getComputedStyle(n).userSelect") == "all"
