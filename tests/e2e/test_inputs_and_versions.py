"""Declared inputs and versions in the browser (issue 11, items 2 and 5), at 1280 and 375 px:
a scripter declares inputs in the editor, a member fills the generated form (checked before
the run), and publishing a chosen version decides what members run."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import db
from app.models import Role, Run, Script
from app.testing import LiveServer
from tests.e2e.conftest import shot
from tests.e2e.people import WIDTHS, add_lab_member, add_script, fits, scripter_lab, signed_in

pytestmark = pytest.mark.browser
GREETER = 'result = {"text": ("Hi " + input["who"] + "! ") * int(input["times"]), ' \
    '"colour": input.get("colour"), "when": input.get("when"), "loud": input["loud"]}\n'


@pytest.fixture
def live_lab(tmp_path: Path) -> Iterator[tuple[LiveServer, int]]:
    with scripter_lab(tmp_path) as live:
        add_lab_member(live, email="mo@example.com", name="Mo", role=Role.member)
        yield live, add_script(live, name="Greeter", source=GREETER, input_schema={})


def declare(page: Any, index: int, name: str, kind: str, *, required: bool = False,
            default: str = "", help_text: str = "", choices: str = "") -> None:
    page.click("#add-input")
    row = page.locator(".input-row").nth(index)
    row.locator(".input-name").fill(name)
    row.locator(".input-type").select_option(kind)
    if required:
        row.locator(".input-required").check()
    if default:
        row.locator(".input-default").fill(default)
    if help_text:
        row.locator(".input-help").fill(help_text)
    if choices:
        row.locator(".input-choices").fill(choices)


def greeter_declared(browser: Any, live: LiveServer, script_id: int, *, times: str) -> Any:
    """Sam's page on the Greeter in the editor with inputs who (text, required), times
    (number, default `times`) and loud (boolean) declared, not saved."""
    sam = signed_in(browser, live, "sam@example.com")
    sam.goto(f"{live.url}/f/lab/editor/{script_id}")
    sam.click("#inputs-editor summary")
    declare(sam, 0, "who", "text", required=True)
    declare(sam, 1, "times", "number", default=times)
    declare(sam, 2, "loud", "boolean")
    return sam


def greeter_card_for_mo(browser: Any, live: LiveServer, script_id: int, *, times: str) -> Any:
    """The Greeter declared as in `greeter_declared`, saved and published by Sam; Mo's
    page on the Scripts page, and the Greeter's card on it."""
    sam = greeter_declared(browser, live, script_id, times=times)
    sam.click("#save-script")
    sam.locator("#save-status", has_text="Saved").wait_for()
    sam.check("#script-published")
    sam.locator("#version-line", has_text="Members run v").wait_for()
    sam.context.close()
    mo = signed_in(browser, live, "mo@example.com")
    mo.goto(f"{live.url}/f/lab/scripts")
    return mo, mo.locator(".script-card", has_text="Greeter")


@pytest.mark.parametrize("width", WIDTHS)
def test_declared_inputs_become_a_checked_form_for_members(
    browser: Any, live_lab: tuple[LiveServer, int], width: int
) -> None:
    live, script_id = live_lab
    sam = signed_in(browser, live, "sam@example.com", width=width)
    sam.goto(f"{live.url}/f/lab/editor/{script_id}")
    sam.click("#inputs-editor summary")
    declare(sam, 0, "who", "text", required=True, help_text="Who to greet")
    declare(sam, 1, "times", "number", default="2")
    declare(sam, 2, "colour", "choice", choices="red, green")
    declare(sam, 3, "when", "date")
    declare(sam, 4, "loud", "boolean")
    assert sam.locator("#save-status").inner_text() == "Unsaved changes"
    shot(sam, f"editor-inputs-{width}")
    sam.click("#save-script")
    sam.locator("#save-status", has_text="Saved").wait_for()
    sam.check("#script-published")
    sam.locator("#version-line", has_text="Members run v").wait_for()
    sam.context.close()

    mo = signed_in(browser, live, "mo@example.com", width=width)
    mo.goto(f"{live.url}/f/lab/scripts")
    card = mo.locator(".script-card", has_text="Greeter")
    assert card.locator(".run-input").count() == 0  # a form, not raw JSON
    order = card.locator("[data-input]").evaluate_all("ns => ns.map(n => n.dataset.input)")
    assert order == ["who", "times", "colour", "when", "loud"]  # as declared
    assert card.locator("[data-input=who] small").inner_text() == "Who to greet"
    assert card.locator("[data-input=times] input").input_value() == "2"
    card.locator(".run-script").click()
    card.locator("[data-input=who] .field-error", has_text="who is required").wait_for()
    with live.app.app_context():
        assert db.session.query(Run).count() == 0  # checked before any run started
    fits(mo, f"scripts-form-errors-{width}")
    card.locator("[data-input=who] input").fill("Ada")
    card.locator("[data-input=colour] select").select_option("green")
    card.locator("[data-input=when] input").fill("2026-03-04")
    card.locator("[data-input=loud] input").check()
    card.locator(".run-script").click()
    card.locator(".run-status", has_text="succeeded").wait_for(timeout=30000)
    result = card.locator(".run-result").inner_text()
    assert '"text": "Hi Ada! Hi Ada! "' in result and '"colour": "green"' in result
    assert '"when": "2026-03-04"' in result and '"loud": true' in result
    fits(mo, f"scripts-form-{width}")
    mo.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_boolean_default_is_chosen_and_a_json_default_that_does_not_parse_is_refused(
    browser: Any, live_lab: tuple[LiveServer, int], width: int
) -> None:
    live, script_id = live_lab
    sam = signed_in(browser, live, "sam@example.com", width=width)
    sam.goto(f"{live.url}/f/lab/editor/{script_id}")
    sam.click("#inputs-editor summary")
    declare(sam, 0, "loud", "boolean")
    loud = sam.locator(".input-row").nth(0)
    assert loud.locator(".input-default").is_hidden()  # no text box to type "yes" into
    options = loud.locator(".input-default-flag option").all_inner_texts()
    assert options == ["no default", "true", "false"]
    loud.locator(".input-default-flag").select_option("true")
    declare(sam, 1, "opts", "json", default="{bad")
    opts = sam.locator(".input-row").nth(1)
    problem = opts.locator(".input-default-error")
    assert problem.inner_text() == "The default is not valid JSON (text goes in double quotes)."
    fits(sam, f"editor-input-default-refused-{width}")
    sam.click("#save-script")
    refused = "Not saved: input opts: The default is not valid JSON"
    sam.locator("#save-status", has_text=refused).wait_for()
    with live.app.app_context():
        assert db.session.get(Script, script_id).input_schema == {}  # nothing was sent
    opts.locator(".input-default").fill('{"a": [1]}')
    assert problem.is_hidden()
    sam.click("#save-script")
    # Not has_text="Saved": it matches "Not saved: ..." of the refused save at once.
    sam.locator("#save-status", has_text=re.compile(r"^Saved ")).wait_for()
    with live.app.app_context():
        properties = db.session.get(Script, script_id).input_schema["properties"]
    assert properties["loud"]["default"] is True
    assert properties["opts"]["default"] == {"a": [1]}
    sam.reload()
    sam.click("#inputs-editor summary")
    assert sam.locator(".input-row").nth(0).locator(".input-default-flag").input_value() == "true"
    sam.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_versions_show_who_and_when_diff_restore_and_publish(
    browser: Any, live_lab: tuple[LiveServer, int], width: int
) -> None:
    live, script_id = live_lab
    sam = signed_in(browser, live, "sam@example.com", width=width)
    api = """async ([path, method, body]) => {
        const csrf = document.querySelector('meta[name="csrf-token"]').content;
        const r = await fetch('/api/f/lab' + path, {method, headers: {
          'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
          body: body ? JSON.stringify(body) : undefined});
        return await r.json();
    }"""
    sam.goto(f"{live.url}/f/lab/scripts")
    for source in ("result = 'one'\n", "result = 'two'\n", "result = 'three'\n"):
        sam.evaluate(api, [f"/scripts/{script_id}", "PATCH", {"source": source}])
    sam.evaluate(api, [f"/scripts/{script_id}/versions/2/publish", "POST", None])
    sam.goto(f"{live.url}/f/lab/editor/{script_id}/versions")
    items = sam.locator(".version-list li")
    assert items.count() == 3
    assert "Sam" in items.first.inner_text()
    assert "published" in items.nth(1).inner_text()
    assert sam.locator(".diff-remove").inner_text() == "-result = 'two'"
    assert sam.locator(".diff-add").inner_text() == "+result = 'three'"
    fits(sam, f"versions-{width}")
    sam.click(".version-list li:nth-child(3) a")  # v1
    sam.locator("h2", has_text="v1").wait_for()
    sam.click("#publish-version")
    sam.locator(".version-main .badge", has_text="published").wait_for()
    with live.app.app_context():
        assert db.session.get(Script, script_id).published_version == 1
    sam.click("#restore-version")
    sam.wait_for_url(f"**/f/lab/editor/{script_id}")
    assert "result = 'one'" in sam.locator(".cm-content").inner_text()
    assert "Members run v1" in sam.locator("#version-line").inner_text()
    sam.context.close()


def test_publishing_a_draft_that_does_not_compile_says_where_and_publishes_nothing(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    # It was published ("Members run v2"), and every member's run then failed.
    live, script_id = live_lab
    with live.app.app_context():
        db.session.get(Script, script_id).source = "total = (1 +\nresult = total\n"
        db.session.commit()
    sam = signed_in(browser, live, "sam@example.com")
    sam.goto(f"{live.url}/f/lab/editor/{script_id}")
    sam.check("#script-published")
    refused = sam.locator("#save-status", has_text=re.compile(r"^Not saved: version 1 does not"))
    refused.wait_for()
    assert "(line 1: SyntaxError" in refused.inner_text()
    assert "fix it, save, then publish" in refused.inner_text()
    assert not sam.locator("#script-published").is_checked()  # as it is: not published
    with live.app.app_context():
        script = db.session.get(Script, script_id)
        assert (script.published, script.published_version) == (False, None)
    sam.context.close()


def test_a_test_run_checks_the_inputs_declared_before_they_are_saved(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    # The unsaved declarations were ignored: no check, no defaults, and the script failed
    # with KeyError: 'who' where the saved declarations said "who is required".
    live, script_id = live_lab
    sam = greeter_declared(browser, live, script_id, times="2")
    sam.locator(".input-row").nth(2).locator(".input-default-flag").select_option("false")
    sam.click("#run-script")
    sam.locator("#run-error", has_text="who is required").wait_for()
    assert sam.locator("#run-status").inner_text() == "not run"
    sam.fill("#run-input", '{"who": "Ada"}')
    sam.click("#run-script")
    sam.locator("#run-status", has_text="succeeded").wait_for(timeout=30000)
    assert '"text": "Hi Ada! Hi Ada! "' in sam.locator("#run-result").inner_text()  # times: 2
    assert sam.locator("#save-status").inner_text() == "Unsaved changes"  # nothing was saved
    with live.app.app_context():
        assert db.session.get(Script, script_id).input_schema == {}
    sam.context.close()


def test_a_form_field_in_error_says_so_to_assistive_technology(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    # The field got aria-invalid="" (which ARIA reads as false) and nothing tied the error
    # text to it: a screen reader on the field heard neither that it was wrong nor why.
    live, script_id = live_lab
    mo, card = greeter_card_for_mo(browser, live, script_id, times="1")
    who = card.locator("[data-input=who] input")
    card.locator(".run-script").click()
    card.locator("[data-input=who] .field-error", has_text="who is required").wait_for()
    assert who.get_attribute("aria-invalid") == "true"
    described = who.evaluate(
        "n => (n.getAttribute('aria-describedby') || '').split(' ')"
        ".map(id => document.getElementById(id)?.textContent || '').join(' ')"
    )
    assert "who is required" in described
    assert card.locator("[data-input=times] input").get_attribute("aria-invalid") is None
    who.fill("Ada")
    card.locator(".run-script").click()
    card.locator(".run-status", has_text="succeeded").wait_for(timeout=30000)
    assert who.get_attribute("aria-invalid") is None  # right again: no longer marked
    mo.context.close()


def test_a_number_the_browser_cannot_read_is_refused_not_replaced_by_its_default(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    # A number field holding "1-2" reads as "" in the browser: the form left times out and
    # the run went ahead with its default, 2, with no word that what was typed was dropped.
    live, script_id = live_lab
    mo, card = greeter_card_for_mo(browser, live, script_id, times="2")
    card.locator("[data-input=who] input").fill("Ada")
    times = card.locator("[data-input=times] input")
    times.fill("")
    times.press_sequentially("1-2")
    card.locator(".run-script").click()
    card.locator("[data-input=times] .field-error", has_text="times must be a number").wait_for()
    assert times.get_attribute("aria-invalid") == "true"
    with live.app.app_context():
        assert db.session.query(Run).count() == 0  # nothing ran with the default
    times.fill("3")
    card.locator(".run-script").click()
    card.locator(".run-status", has_text="succeeded").wait_for(timeout=30000)
    assert '"text": "Hi Ada! Hi Ada! Hi Ada! "' in card.locator(".run-result").inner_text()
    mo.context.close()


def test_a_save_from_a_second_tab_does_not_write_over_the_first_unseen(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    # The second tab's Save overwrote what the first had saved, and said "Saved".
    live, script_id = live_lab
    first = signed_in(browser, live, "sam@example.com")
    second = first.context.new_page()
    for page in (first, second):
        page.goto(f"{live.url}/f/lab/editor/{script_id}")
    for page, line in ((first, "# first tab"), (second, "# second tab")):
        page.click(".cm-content")
        page.keyboard.press("Control+End")
        page.keyboard.type(f"\n{line}")
    first.click("#save-script")
    first.locator("#save-status", has_text=re.compile(r"^Saved ")).wait_for()
    second.click("#save-script")
    refused = second.locator("#save-status", has_text="Not saved: v1 was saved after")
    refused.wait_for()
    assert refused.get_by_role("link", name="Compare on Versions").count() == 1
    with live.app.app_context():
        source = db.session.get(Script, script_id).source
    assert "# first tab" in source and "# second tab" not in source
    second.click("#save-script")  # meant, this time
    second.locator("#save-status", has_text=re.compile(r"^Saved ")).wait_for()
    with live.app.app_context():
        assert "# second tab" in db.session.get(Script, script_id).source
    first.context.close()
