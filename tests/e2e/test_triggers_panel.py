"""The editor's Triggers panel in Debian's Chromium, by keyboard: a scripter names a
webhook trigger and presses Enter; its URL is shown once with words saying so and a Copy
button that has the focus and copies it; a POST to the URL shows as the trigger's last
use; a version another scripter publishes waits for the maker's Approve (the URL answers
409 until then); Revoke asks first, the row goes and the focus returns to the name field; the URL is
not on the page once it is loaded again; axe-core finds nothing serious in the panel."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select
from standardwebhooks import Webhook

from app import db, extensions
from app.models import Role, Script, User
from app.services.trigger_signatures import signature, slack_signature
from app.testing import LiveServer, WebClient
from tests.e2e.people import add_lab_member, add_script, scripter_lab, signed_in
from tests.e2e.test_accessibility import axe_violations

pytestmark = pytest.mark.browser


@pytest.fixture
def live_lab(tmp_path: Path) -> Iterator[tuple[LiveServer, int, int]]:
    """Facility `lab`, its scripters sam@example.com and sue@example.com and a published
    script "Report"."""
    with scripter_lab(tmp_path) as live:
        sue_id = add_lab_member(live, email="sue@example.com", name="Sue", role=Role.scripter)
        script_id = add_script(live, name="Report", source="result = input\n", published=True)
        yield live, script_id, sue_id


def focused(page: Any) -> str:
    return str(page.evaluate("document.activeElement?.id || document.activeElement?.className"))


def open_panel(
    browser: Any, live: LiveServer, script_id: int, email: str = "sam@example.com", **options: Any
) -> tuple[Any, Any]:
    """A page signed in as `email` (`options`: signed_in's) on the script's editor, and
    its Triggers panel, opened by a click."""
    page = signed_in(browser, live, email, **options)
    page.goto(f"{live.url}/f/lab/editor/{script_id}")
    panel = page.locator("#triggers-panel")
    panel.locator("summary").click()
    return page, panel


def a_signed_post_starts_a_run(
    live: LiveServer, page: Any, panel: Any, body: bytes, headers: dict[str, str], secret: str
) -> None:
    """The new trigger's URL (shown in the panel) refuses `body` unsigned and starts a run
    with it signed (`headers`); the panel, loaded again, says the trigger's last use and
    what it refused, and never `secret` (the Slack and the Standard Webhooks tests)."""
    url = panel.locator("#trigger-url").inner_text()
    assert requests.post(url, data=body, timeout=30).status_code == 401
    started = requests.post(url, data=body, headers=headers, timeout=30)
    assert started.status_code == 202, started.text
    assert extensions.run_queue(live.app).wait(started.json()["run_id"], 60) is not None
    page.reload()
    panel.locator("summary").click()
    row = panel.locator("#triggers-table tbody tr")
    row.wait_for()
    assert row.locator(".trigger-last-used").inner_text() != "never"
    assert "signature_invalid" in row.locator(".trigger-refused").inner_text()
    assert secret not in page.content()


def test_a_scripter_makes_copies_uses_and_revokes_a_trigger_by_keyboard(
    browser: Any, live_lab: tuple[LiveServer, int, int]
) -> None:
    live, script_id, sue_id = live_lab
    page = signed_in(browser, live, "sam@example.com", bypass_csp=True)  # for axe-core
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
    page.goto(f"{live.url}/f/lab/editor/{script_id}")
    panel = page.locator("#triggers-panel")
    panel.locator("summary").focus()
    page.keyboard.press("Enter")  # opens the <details>
    name = panel.locator("#trigger-name")
    name.focus()
    page.keyboard.type("Signup form")
    page.keyboard.press("Enter")

    made = panel.locator("#trigger-made")
    made.wait_for()
    assert "it will not be shown again" in made.inner_text()
    assert "like a password" in made.inner_text()
    url = panel.locator("#trigger-url").inner_text()
    assert url.startswith(f"{live.app.config['PUBLIC_URL']}/hooks/sbh_")
    row = panel.locator("#triggers-table tbody tr")
    row.wait_for()
    assert row.locator(".trigger-name strong").inner_text() == "Signup form"
    assert row.locator(".trigger-last-used").inner_text() == "never"
    assert focused(page) == "copy-trigger-url"
    page.keyboard.press("Enter")
    page.get_by_text("URL copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == url
    assert axe_violations(page, include="#triggers-panel") == []

    started = requests.post(url, json={"to": "team"}, timeout=30)
    assert started.status_code == 202, started.text
    assert extensions.run_queue(live.app).wait(started.json()["run_id"], 60) is not None
    page.reload()
    panel.locator("summary").click()
    row.wait_for()
    assert row.locator(".trigger-last-used time").count() == 1
    assert url.rsplit("/", 1)[1] not in page.content()  # shown once, never again

    # Sue publishes a version: it waits for Sam's approval, which the keyboard gives.
    sue = WebClient(live.app, live.url, sue_id)
    published = sue.api("PATCH", f"/api/f/lab/scripts/{script_id}",
                        json={"source": "result = 'v1'", "published": True})
    assert published.status_code == 200, published.text
    assert requests.post(url, json={}, timeout=30).status_code == 409
    page.reload()
    panel.locator("summary").click()
    assert row.locator(".trigger-pending").inner_text() == "v1 to approve"
    row.locator(".trigger-approve").focus()
    page.keyboard.press("Enter")
    row.locator(".trigger-pending").wait_for(state="detached")
    page.wait_for_function(
        "document.activeElement?.classList.contains('trigger-revoke')")
    assert requests.post(url, json={}, timeout=30).status_code == 202

    page.once("dialog", lambda dialog: dialog.accept())
    row.locator(".trigger-revoke").focus()
    page.keyboard.press("Enter")
    panel.locator("#triggers-table").wait_for(state="hidden")
    page.wait_for_function("document.activeElement?.id === 'trigger-name'")
    assert requests.post(url, json={}, timeout=30).status_code == 404
    page.context.close()


def test_the_panel_says_an_unpublished_scripts_urls_start_nothing(
    browser: Any, live_lab: tuple[LiveServer, int, int]
) -> None:
    """A trigger runs the published version: while the script is not published the panel
    says its URLs start nothing and how to change that, and the box's change updates it."""
    live, script_id, _sue_id = live_lab
    with live.app.app_context():
        script = db.session.get(Script, script_id)
        assert script is not None
        script.published = False
        db.session.commit()
    page, panel = open_panel(browser, live, script_id)
    note = panel.locator("#triggers-unpublished")
    note.wait_for()
    assert "Not published" in note.inner_text() and "tick Published" in note.inner_text()

    box = page.locator("#script-published")
    box.focus()
    page.keyboard.press("Space")  # publishes (saved at once)
    note.wait_for(state="hidden")
    panel.locator("#trigger-name").fill("Signup form")
    page.keyboard.press("Enter")
    panel.locator("#trigger-made").wait_for()
    # The panel gives Copy the focus once its list is read again, after showing the URL:
    # a Space pressed before that pressed Copy, not the box.
    page.wait_for_function("document.activeElement?.id === 'copy-trigger-url'")
    box.focus()
    page.keyboard.press("Space")  # unpublished again: its URL answers 409
    note.wait_for()
    stopped = panel.locator("#triggers-table tbody tr .trigger-stopped")
    stopped.wait_for()
    assert stopped.inner_text().startswith("the script is not published")
    page.context.close()


def test_another_scripter_sees_who_may_approve_and_revoke(
    browser: Any, live_lab: tuple[LiveServer, int, int]
) -> None:
    """Only a trigger's maker approves a version and only they or an admin revoke it: the
    panel offers another scripter neither button (the server would refuse), and says who
    may."""
    live, script_id, sue_id = live_lab
    with live.app.app_context():
        sam_id = db.session.scalar(select(User.id).where(User.email == "sam@example.com"))
    sam = WebClient(live.app, live.url, sam_id)
    made = sam.api("POST", f"/api/f/lab/scripts/{script_id}/triggers", json={"name": "CI"})
    assert made.status_code == 201, made.text
    sue = WebClient(live.app, live.url, sue_id)
    published = sue.api("PATCH", f"/api/f/lab/scripts/{script_id}",
                        json={"source": "result = 'v2'", "published": True})
    assert published.status_code == 200, published.text

    page, panel = open_panel(browser, live, script_id, "sue@example.com")
    row = panel.locator("#triggers-table tbody tr")
    row.wait_for()
    assert row.locator(".trigger-pending").count() == 1  # the version waits, and says whom
    assert row.locator(".trigger-approve, .trigger-revoke, .trigger-toggle").count() == 0
    whose = row.locator(".trigger-whose").inner_text()
    assert whose == "Only Sam or an admin can pause or revoke it"
    page.context.close()


def test_a_signed_trigger_shows_its_secret_once_and_links_to_its_runs(
    browser: Any, live_lab: tuple[LiveServer, int, int]
) -> None:
    """Signature: GitHub's makes a signing secret, shown once under the URL; the row says
    the trigger checks GitHub's signatures; its Runs link lists the runs it started, and a
    run's page names it."""
    live, script_id, _sue_id = live_lab
    page = signed_in(browser, live, "sam@example.com", bypass_csp=True)  # for axe-core
    # No clipboard (plain http): the Copy button selects the whole secret instead.
    page.add_init_script("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
    page.goto(f"{live.url}/f/lab/editor/{script_id}")
    panel = page.locator("#triggers-panel")
    panel.locator("summary").click()
    panel.locator("#trigger-signature").select_option("github")
    assert panel.locator("#trigger-slack-secret-row").is_hidden()  # we make GitHub's
    panel.locator("#trigger-name").fill("GitHub push")
    page.keyboard.press("Enter")
    panel.locator("#trigger-secret-row").wait_for()
    secret = panel.locator("#trigger-secret").inner_text()
    assert secret.startswith("sbs_")
    assert "shown this once" in panel.locator("#trigger-secret-row").inner_text()
    # It had no Copy button, and a double-click selected only a piece between two of its
    # hyphens or underscores: a sender set up with that piece signed every POST wrong.
    panel.locator("#copy-trigger-secret").click()
    page.locator(".toast", has_text="the signing secret is selected, press Ctrl+C").wait_for()
    assert page.evaluate("getSelection().toString()") == secret
    assert panel.locator("#trigger-secret").evaluate(
        "n => getComputedStyle(n).userSelect") == "all"
    url = panel.locator("#trigger-url").inner_text()
    row = panel.locator("#triggers-table tbody tr")
    row.wait_for()
    assert row.locator(".trigger-signed").inner_text() == (
        "checks GitHub’s signatures (X-Hub-Signature-256)")
    # The next trigger asks again.
    assert panel.locator("#trigger-signature").input_value() == ""
    assert axe_violations(page, include="#triggers-panel") == []

    body = b'{"ref": "main"}'
    headers = {"Content-Type": "application/json",
               "X-Hub-Signature-256": signature(secret, body)}
    assert requests.post(url, data=body, timeout=30).status_code == 401
    started = requests.post(url, data=body, headers=headers, timeout=30)
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    assert extensions.run_queue(live.app).wait(run_id, 60) is not None
    page.reload()
    panel.locator("summary").click()
    assert secret not in page.content()  # shown once, never again
    row.locator(".trigger-runs").click()
    notice = page.locator("#hook-filter")
    notice.wait_for()
    assert "GitHub push" in notice.inner_text() and "Report" in notice.inner_text()
    page.locator(f"a[href$='/runs/{run_id}']").first.click()
    page.locator("#run-webhook-trigger").wait_for()
    assert page.locator("#run-webhook-trigger").inner_text() == "GitHub push"
    page.context.close()


def test_a_slack_signed_trigger_takes_the_pasted_secret_and_shows_its_scheme(
    browser: Any, live_lab: tuple[LiveServer, int, int]
) -> None:
    """Signature: Slack's asks for the Slack app's signing secret (by keyboard: the field
    shows once chosen); nothing secret is shown back, the row says the trigger checks
    Slack's signatures, and a request Slack signed with it starts a run."""
    live, script_id, _sue_id = live_lab
    page, panel = open_panel(browser, live, script_id, bypass_csp=True)  # for axe-core
    pasted = panel.locator("#trigger-slack-secret")
    assert pasted.is_hidden()
    panel.locator("#trigger-signature").focus()
    page.keyboard.press("End")  # the last option: Slack's
    assert panel.locator("#trigger-signature").input_value() == "slack"
    pasted.wait_for()
    page.keyboard.press("Tab")
    assert focused(page) == "trigger-slack-secret"
    secret = "8f742231b10e8888abcd99yyyzzz85a5"
    page.keyboard.type(secret)
    panel.locator("#trigger-name").fill("Slack events")
    page.keyboard.press("Enter")
    panel.locator("#trigger-made").wait_for()
    assert panel.locator("#trigger-secret-row").is_hidden()  # Slack's is never shown back
    row = panel.locator("#triggers-table tbody tr")
    row.wait_for()
    assert row.locator(".trigger-signed").inner_text() == (
        "checks Slack’s signatures (X-Slack-Signature)")
    assert (pasted.input_value(), pasted.is_hidden()) == ("", True)  # the next one asks again
    assert secret not in page.content()
    assert axe_violations(page, include="#triggers-panel") == []

    body = b'{"type": "event_callback", "event_id": "Ev1"}'
    stamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp,
               "X-Slack-Signature": slack_signature(secret, stamp, body)}
    a_signed_post_starts_a_run(live, page, panel, body, headers, secret)
    page.context.close()


def test_a_standard_webhooks_trigger_takes_the_pasted_whsec_secret(
    browser: Any, live_lab: tuple[LiveServer, int, int]
) -> None:
    """Signature: Standard Webhooks asks for the sender's whsec_ secret (by keyboard: its
    field shows once chosen, and the browser asks for it when left empty); nothing secret
    is shown back, the row says the trigger checks Standard Webhooks signatures, and a
    request signed with it by the standardwebhooks package's signer starts a run."""
    live, script_id, _sue_id = live_lab
    page, panel = open_panel(browser, live, script_id, bypass_csp=True)  # for axe-core
    pasted = panel.locator("#trigger-standard-secret")
    assert pasted.is_hidden()
    panel.locator("#trigger-signature").focus()
    page.keyboard.press("End")  # Slack's, then the one above it
    page.keyboard.press("ArrowUp")
    assert panel.locator("#trigger-signature").input_value() == "standard"
    pasted.wait_for()
    assert panel.locator("#trigger-slack-secret").is_hidden()
    assert "whsec_" in panel.locator("#trigger-standard-secret-row").inner_text()
    panel.locator("#trigger-name").fill("Resend events")
    panel.locator("#add-trigger").click()  # no secret pasted: the browser asks for it
    assert pasted.evaluate("n => n.matches(':invalid')")
    assert panel.locator("#trigger-made").is_hidden()
    panel.locator("#trigger-signature").focus()
    page.keyboard.press("Tab")
    assert focused(page) == "trigger-standard-secret"
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    page.keyboard.type(secret)
    page.keyboard.press("Enter")
    panel.locator("#trigger-made").wait_for()
    assert panel.locator("#trigger-secret-row").is_hidden()  # a pasted one is never shown
    row = panel.locator("#triggers-table tbody tr")
    row.wait_for()
    assert row.locator(".trigger-signed").inner_text() == (
        "checks Standard Webhooks signatures (webhook-signature)")
    assert (pasted.input_value(), pasted.is_hidden()) == ("", True)  # the next one asks again
    assert panel.locator("#trigger-signature").input_value() == ""
    assert secret not in page.content()
    assert axe_violations(page, include="#triggers-panel") == []

    body = b'{"type": "email.delivered", "data": {"to": "ann@example.com"}}'
    now = datetime.now(UTC)
    headers = {"Content-Type": "application/json", "webhook-id": "msg_panel",
               "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": Webhook(secret).sign("msg_panel", now, body)}
    a_signed_post_starts_a_run(live, page, panel, body, headers, secret)
    page.context.close()


def test_a_maker_pauses_and_resumes_a_trigger_and_sees_what_its_url_refused(
    browser: Any, live_lab: tuple[LiveServer, int, int]
) -> None:
    """Pause by keyboard: the row says paused, its URL answers 409 and the row then says
    what it refused and when; Resume keeps the focus on the row's button and the URL
    starts runs again. axe-core finds nothing serious in the panel."""
    live, script_id, _sue_id = live_lab
    page, panel = open_panel(browser, live, script_id, bypass_csp=True)  # for axe-core
    panel.locator("#trigger-name").fill("Signup form")
    page.keyboard.press("Enter")
    panel.locator("#trigger-made").wait_for()
    url = panel.locator("#trigger-url").inner_text()
    row = panel.locator("#triggers-table tbody tr")
    row.wait_for()
    assert row.locator(".trigger-refused").count() == 0

    toggle = row.locator(".trigger-toggle")
    assert toggle.inner_text() == "Pause"
    toggle.focus()
    page.keyboard.press("Enter")
    row.locator(".trigger-paused").wait_for()
    assert row.locator(".trigger-toggle").inner_text() == "Resume"
    page.wait_for_function(
        "document.activeElement?.classList.contains('trigger-toggle')")
    refused = requests.post(url, json={"to": "team"}, timeout=30)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "trigger_paused"

    page.reload()
    panel.locator("summary").click()
    note = row.locator(".trigger-refused")
    note.wait_for()
    assert note.inner_text() == (
        "last refused just now: trigger_paused (409, the trigger is paused)")
    assert axe_violations(page, include="#triggers-panel") == []
    row.locator(".trigger-toggle").focus()
    page.keyboard.press("Enter")
    row.locator(".trigger-paused").wait_for(state="detached")
    assert row.locator(".trigger-toggle").inner_text() == "Pause"
    page.wait_for_function(
        "document.activeElement?.classList.contains('trigger-toggle')")
    started = requests.post(url, json={"to": "team"}, timeout=30)
    assert started.status_code == 202, started.text
    assert extensions.run_queue(live.app).wait(started.json()["run_id"], 60) is not None
    page.context.close()


def test_a_field_the_browser_refuses_clears_the_last_answers_error(
    browser: Any, live_lab: tuple[LiveServer, int, int]
) -> None:
    """A blank name refused by the server, then Slack's signature without its secret: the
    browser stopped the form at the empty secret, and the panel still said the name was
    wrong, which it no longer was."""
    live, script_id, _sue_id = live_lab
    page, panel = open_panel(browser, live, script_id)
    panel.locator("#trigger-name").fill("   ")
    panel.locator("#add-trigger").click()
    error = panel.locator("#trigger-error")
    error.get_by_text("give the trigger a name").wait_for()
    panel.locator("#trigger-name").fill("Slack events")
    panel.locator("#trigger-signature").select_option("slack")
    panel.locator("#add-trigger").click()
    error.wait_for(state="hidden")
    assert panel.locator("#trigger-slack-secret").evaluate("n => n.matches(':invalid')")
    page.context.close()
