"""Accessibility in Debian's Chromium: axe-core (tests/e2e/vendor) checks every page an admin,
a scripter and a member reach, and the sign-in prompt, at 1280 and 375 px; a violation of
impact serious or critical fails, named by rule, element and axe's help. The sign-in prompt's
Sign in and Refuse and the editor's Run are reached with Tab alone and show a focus ring.

One server and one signed-in page per person and width serve the whole file (it stays fast):
the pages are only read, and the one test that changes state (the prompt) undoes it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app import db
from app.models import Grant, Integration, Role, Script, User, WebhookDelivery, WebhookEndpoint
from app.models._types import utcnow
from app.services import connect_links, inputs, invitations, versions
from app.testing import LiveServer
from tests.conftest import (
    add_member,
    close_live,
    create_closed_oauth_integration,
    create_facility,
    create_integration,
    create_user,
    make_app,
)
from tests.e2e.people import WIDTHS, signed_in
from tests.e2e.test_runs_page import start_run

pytestmark = pytest.mark.browser
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
FAILING = ("serious", "critical")
PEOPLE = {"admin": "ada@example.com", "scripter": "sam@example.com", "member": "mo@example.com"}
GREETER = 'print("hello", input.get("who"))\nresult = {"greeted": input.get("who")}\n'
FAILS = 'def helper(n):\n    return 10 / n\n\nresult = helper(0)\n'
NEEDS_KEY = 'result = integrations.get("keyed", "/echo").status\n'
FIELDS = [
    {"name": "who", "type": "text", "required": True, "help": "Whom to greet"},
    {"name": "times", "type": "number", "default": "2"},
    {"name": "loud", "type": "boolean"},
    {"name": "tone", "type": "choice", "choices": ["warm", "dry"]},
    {"name": "on", "type": "date"},
    {"name": "extra", "type": "json"},
]


@dataclass
class Site:
    """The served lab, its scripts, a finished and a failed run of each person's, and the
    signed-in pages (one per person and width, made when first asked for)."""

    live: LiveServer
    scripts: dict[str, int]
    runs: dict[str, str] = field(default_factory=dict)
    pages: dict[tuple[str, int], Any] = field(default_factory=dict)

    def page(self, browser: Any, person: str, width: int) -> Any:
        key = (person, width)
        if key not in self.pages:
            # The pages' CSP allows only their own scripts; axe is added to them as inline.
            self.pages[key] = signed_in(browser, self.live, PEOPLE[person], width=width,
                                        bypass_csp=True)
        return self.pages[key]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Site]:
    """Lab (Ada admin, Sam scripter, Mo member) and the Annex (Ada and Sam, Mo invited), an
    API-key and an OAuth integration, scripts with declared inputs, a saved version, a
    webhook with deliveries, a pending invitation in the lab."""
    app = make_app(tmp_path_factory.mktemp("accessibility"))
    live = LiveServer(app)
    with app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab", name="The Lab")
        annex = create_facility(session, slug="annex", name="The Annex")
        users = {}
        for (person, email), name in zip(PEOPLE.items(), ("Ada Admin", "Sam Scripter",
                                                          "Mo Member"), strict=True):
            users[person] = create_user(session, email=email, name=name)
            add_member(session, user=users[person], facility=lab, role=person)
        add_member(session, user=users["admin"], facility=annex, role=Role.admin)
        add_member(session, user=users["scripter"], facility=annex, role=Role.scripter)
        invitations.invite(session, facility=annex, email=PEOPLE["member"], role="member",
                           invited_by=users["admin"])
        invitations.invite(session, facility=lab, email="new@example.com", role="scripter",
                           invited_by=users["admin"])
        create_integration(session, facility=lab, key="keyed", name="Keyed API")
        create_closed_oauth_integration(session, facility=lab)
        scripts = {}
        for name, source, schema in (("Greeter", GREETER, inputs.schema_from_fields(FIELDS)),
                                     ("Fails", FAILS, {}), ("Needs key", NEEDS_KEY, {})):
            script = Script(facility_id=lab.id, name=name, source=source, input_schema=schema,
                            published=True, description=f"{name}, for the accessibility test")
            session.add(script)
            session.flush()
            versions.record_version(session, script=script, user_id=users["scripter"].id)
            scripts[name] = script.id
        greeter = session.get(Script, scripts["Greeter"])
        assert greeter is not None
        greeter.source += "# a second version\n"
        versions.record_version(session, script=greeter, user_id=users["scripter"].id)
        # An event no run sends: the sender never posts anywhere during the test.
        endpoint = WebhookEndpoint(facility_id=lab.id, url="https://hooks.example.com/in",
                                   events=["account.needs_reauth"], secret_enc="unused",
                                   active=True)
        session.add(endpoint)
        session.flush()
        now = utcnow()
        session.add_all([
            WebhookDelivery(endpoint_id=endpoint.id, facility_id=lab.id,
                            event="account.needs_reauth", payload={}, status="delivered",
                            attempts=1, created_at=now - timedelta(minutes=3), response_code=204),
            WebhookDelivery(endpoint_id=endpoint.id, facility_id=lab.id,
                            event="account.needs_reauth", payload={}, status="failed",
                            attempts=5, created_at=now, response_code=500,
                            last_error="answered HTTP 500"),
        ])
        session.commit()
        db.session.remove()
    built = Site(live, scripts)
    try:
        for person in PEOPLE:
            page = built.page(browser, person, 1280)
            page.goto(f"{live.url}/f/lab/runs")
            built.runs[f"{person}-ok"] = start_run(page, scripts["Greeter"], {"who": "you"})
            built.runs[f"{person}-failed"] = start_run(page, scripts["Fails"])
        for run_id in built.runs.values():
            page.wait_for_function(
                """async (id) => {
                    const r = await fetch('/api/f/lab/runs/' + id);
                    return ['succeeded', 'failed'].includes((await r.json()).status);
                }""", arg=run_id, polling=100, timeout=30000)
        yield built
    finally:
        for opened in built.pages.values():
            opened.context.close()
        close_live(live)


# axe findings that are not problems: (rule, the element as a CSS selector), each with why.
NOT_PROBLEMS = [
    # CodeMirror's scroller holds the editable text (contenteditable, reached with Tab), and
    # moving the caret scrolls it; axe counts no contenteditable as focusable content.
    ("scrollable-region-focusable", ".cm-editor > .cm-scroller"),
]


def axe_violations(page: Any, *, include: str | None = None) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now (within the
    `include` selector when given), one readable line per element."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        """async ([include, notProblems]) => {
            const results = await axe.run(include ? {include: [include]} : document,
                                          {resultTypes: ['violations']});
            const excused = (rule, target) => {
                const node = target.length === 1 && document.querySelector(target[0]);
                return node && notProblems.some(([id, selector]) =>
                    id === rule && node.matches(selector));
            };
            return results.violations.map((violation) => ({...violation,
                nodes: violation.nodes.filter((node) => !excused(violation.id, node.target))}));
        }""",
        [include, NOT_PROBLEMS],
    )
    lines = []
    for violation in found:
        if violation["impact"] not in FAILING:
            continue
        for node in violation["nodes"]:
            target = " >> ".join(str(part) for part in node["target"])
            summary = " ".join(node["failureSummary"].split())
            lines.append(f"{violation['id']} ({violation['impact']}) at {target}: "
                         f"{violation['help']}. {summary} [{violation['helpUrl']}]")
    return lines


def check(page: Any, url: str, name: str) -> None:
    """Open `url` and fail with axe's serious and critical violations there."""
    page.goto(url)
    page.wait_for_load_state("networkidle")
    problems = axe_violations(page)
    assert not problems, f"{name}: {len(problems)} accessibility violations\n" + "\n".join(
        problems)


# Every page and who reads it: each person for whom the page differs (a member's failed run
# says the error in words, a scripter's gives its code and traceback; an admin's runs list
# shows everyone's), once where it is the same for all (the settings pages, the API docs).
# Home (/) sends each of them to the facility's scripts.
PAGES = {
    "scripts": ("/f/lab/scripts", ("admin", "scripter", "member")),
    "runs": ("/f/lab/runs", ("admin", "member")),
    "run-succeeded": ("/f/lab/runs/{run_ok}", ("member",)),
    "run-failed": ("/f/lab/runs/{run_failed}", ("scripter", "member")),
    "editor": ("/f/lab/editor/{greeter}", ("admin", "scripter")),
    "editor-new-script": ("/f/lab/editor", ("scripter",)),
    "versions": ("/f/lab/editor/{greeter}/versions", ("scripter",)),
    "settings-integrations": ("/settings/integrations", ("admin", "member")),
    "settings-password": ("/settings/password", ("member",)),
    "settings-tokens": ("/settings/tokens", ("member",)),
    "invitations": ("/invitations", ("member",)),
    "connect-link": ("/connect/{token}", ("member",)),
    "manage": ("/f/lab/manage", ("admin",)),
    "manage-new-integration": ("/f/lab/manage/integrations/new", ("admin",)),
    "manage-integration-key": ("/f/lab/manage/integrations/keyed", ("admin",)),
    "manage-integration-oauth": ("/f/lab/manage/integrations/oauthy", ("admin",)),
    "manage-call-log": ("/f/lab/manage/calls", ("admin",)),
    "manage-usage": ("/f/lab/manage/usage", ("admin",)),
    "api-docs": ("/api/docs", ("member",)),
}
CASES = [(name, person) for name, (_path, people) in PAGES.items() for person in people]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("name", "person"), CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_a_page_has_no_serious_accessibility_violations(
    browser: Any, site: Site, name: str, person: str, width: int
) -> None:
    page = site.page(browser, person, width)
    values = {
        "greeter": site.scripts["Greeter"],
        "run_ok": site.runs[f"{person}-ok"],
        "run_failed": site.runs[f"{person}-failed"],
        "token": connect_link(site.live, PEOPLE[person]) if name == "connect-link" else "",
    }
    path = PAGES[name][0].format(**values)
    check(page, site.live.url + path, f"{name} as {person} at {width}px")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_sign_in_page_has_no_serious_accessibility_violations(
    browser: Any, site: Site, width: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
    page = context.new_page()
    try:
        check(page, f"{site.live.url}/login", f"sign-in at {width}px")
        page.fill("input[name=email]", PEOPLE["member"])
        page.fill("input[name=password]", "not the password")
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        problems = axe_violations(page)
        assert not problems, "sign-in refused:\n" + "\n".join(problems)
    finally:
        context.close()


def prompt_up(browser: Any, site: Site, width: int) -> tuple[Any, Any]:
    """The member's Scripts page with the sign-in prompt of a run that needs a key; the
    page and the prompt."""
    page = site.page(browser, "member", width)
    page.goto(f"{site.live.url}/f/lab/scripts")
    card = page.locator(".script-card", has_text="Needs key")
    card.locator(".run-script").click()
    prompt = page.locator(".grant-prompt")
    prompt.wait_for(timeout=30000)
    return page, prompt


@pytest.mark.parametrize("width", WIDTHS)
def test_the_sign_in_prompt_and_its_window_have_no_serious_accessibility_violations(
    browser: Any, site: Site, width: int
) -> None:
    page, prompt = prompt_up(browser, site, width)
    try:
        problems = axe_violations(page)
        assert not problems, f"prompt at {width}px:\n" + "\n".join(problems)
        if width < 640:
            prompt.locator(".grant-summary").click()  # the bar opens for its details
            problems = axe_violations(page, include=".grant-prompt")
            assert not problems, f"opened prompt at {width}px:\n" + "\n".join(problems)
        # The window Sign in opens: the key form of an API-key integration.
        form = page.context.new_page()
        try:
            check(form, f"{site.live.url}/f/lab/grants/{waiting_grant(site.live)}/sign-in",
                  f"grant sign-in form at {width}px")
        finally:
            form.close()
    finally:
        prompt.locator(".grant-refuse").click()
        page.locator(".script-card", has_text="Needs key").locator(
            ".run-status", has_text="failed").wait_for(timeout=30000)


def waiting_grant(live: LiveServer) -> str:
    with live.app.app_context():
        grant_id = db.session.scalar(select(Grant.id).where(Grant.state == "pending"))
        db.session.remove()
    assert grant_id is not None
    return str(grant_id)


def connect_link(live: LiveServer, email: str) -> str:
    """A fresh connect link to the Keyed API for the user."""
    with live.app.app_context():
        integration = db.session.scalar(select(Integration).where(Integration.key == "keyed"))
        user_id = db.session.scalar(select(User.id).where(User.email == email))
        assert integration is not None and user_id is not None
        _link, token = connect_links.issue(
            db.session(), facility_id=integration.facility_id, user_id=user_id,
            integration=integration, created_by=None, label="", return_to=None)
        db.session.commit()
        db.session.remove()
    return token


def contrast(one: str, other: str) -> float:
    """WCAG's contrast ratio of two CSS rgb()/rgba() colours (alpha ignored)."""
    def luminance(css: str) -> float:
        channels = [int(part) / 255 for part in re.findall(r"[\d.]+", css)[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


FOCUSED = """() => {
    const node = document.activeElement;
    const style = getComputedStyle(node);
    // The ring is drawn around the element, over what is behind it.
    let behind = node.parentElement, around = 'rgb(255, 255, 255)';
    for (; behind; behind = behind.parentElement) {
        const color = getComputedStyle(behind).backgroundColor;
        if (color !== 'transparent' && !/rgba\\(.*, 0\\)$/.test(color)) { around = color; break; }
    }
    return {ringed: node.matches(':focus-visible'), style: style.outlineStyle,
            width: parseFloat(style.outlineWidth), color: style.outlineColor, around};
}"""


def tab_to(page: Any, selector: str, *, presses: int = 60) -> None:
    """Press Tab until `selector` has the focus; fail if it never does, or if its focus
    ring is missing or hard to see (under 2px, or under 3:1 against what is around it)."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            break
    else:
        pytest.fail(f"{selector} is not reached with Tab ({presses} presses)")
    ring = page.evaluate(FOCUSED)
    assert ring["ringed"] and ring["style"] != "none" and ring["width"] >= 2, (selector, ring)
    assert contrast(ring["color"], ring["around"]) >= 3, (selector, ring)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_prompt_and_the_editor_run_button_are_reached_by_tab_with_a_focus_ring(
    browser: Any, site: Site, width: int
) -> None:
    page, prompt = prompt_up(browser, site, width)
    try:
        page.focus(".brand")  # the page's first stop: from there on by keyboard alone
        tab_to(page, ".grant-sign-in")
        tab_to(page, ".grant-refuse", presses=1)  # right after Sign in
    finally:
        page.keyboard.press("Enter")  # Refuse, by keyboard
        page.locator(".script-card", has_text="Needs key").locator(
            ".run-status", has_text="failed").wait_for(timeout=30000)
    assert prompt.count() == 0
    scripter = site.page(browser, "scripter", width)
    scripter.goto(f"{site.live.url}/f/lab/editor/{site.scripts['Greeter']}")
    scripter.focus(".brand")
    tab_to(scripter, "#run-script")


# Dark mode follows the system setting: each page once more in it, as the first person who
# reads it, at the wide width (the narrow one changes layout, not colours).
DARK_CASES = [(name, people[0]) for name, (_path, people) in PAGES.items()]


@pytest.mark.parametrize(("name", "person"), DARK_CASES, ids=[n for n, _p in DARK_CASES])
def test_a_page_in_dark_mode_has_no_serious_accessibility_violations(
    browser: Any, site: Site, name: str, person: str
) -> None:
    page = site.page(browser, person, 1280)
    values = {
        "greeter": site.scripts["Greeter"],
        "run_ok": site.runs[f"{person}-ok"],
        "run_failed": site.runs[f"{person}-failed"],
        "token": connect_link(site.live, PEOPLE[person]) if name == "connect-link" else "",
    }
    page.emulate_media(color_scheme="dark")
    try:
        check(page, site.live.url + PAGES[name][0].format(**values), f"{name} in dark mode")
    finally:
        page.emulate_media(color_scheme="light")


TOAST_COLOURS = """(kind) => {
    const item = document.createElement('div');
    item.className = 'toast ' + kind;
    item.textContent = 'A toast';
    document.getElementById('toasts').append(item);
    const style = getComputedStyle(item);
    const colours = {ink: style.color, ground: style.backgroundColor};
    item.remove();
    return colours;
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_kind_of_toast_is_readable_in_both_colour_schemes(
    browser: Any, site: Site, scheme: str
) -> None:
    """Toasts come and go in four seconds, so the page scans rarely meet one: each kind is
    put up here and its text held to WCAG's 4.5:1 against its own background."""
    page = site.page(browser, "member", 1280)
    page.goto(f"{site.live.url}/f/lab/scripts")
    page.emulate_media(color_scheme=scheme)
    try:
        for kind in ("info", "ok", "warn", "error"):
            colours = page.evaluate(TOAST_COLOURS, kind)
            ratio = contrast(colours["ink"], colours["ground"])
            assert ratio >= 4.5, f"a {kind} toast in {scheme} mode: {colours}, {ratio:.2f}:1"
    finally:
        page.emulate_media(color_scheme="light")


def test_an_error_toast_stays_to_be_read_and_a_click_puts_it_away(
    browser: Any, site: Site
) -> None:
    # Errors that say what to do next ("... is the last admin ...") went after 4 s, like
    # "Saved", before a slow reader got to the end (WCAG 2.2.1).
    page = signed_in(browser, site.live, PEOPLE["member"], width=1280)  # its own clock
    page.clock.install()
    page.goto(f"{site.live.url}/f/lab/scripts")
    page.evaluate("""async () => {
        const { toast } = await import('/static/js/api.js');
        toast('Saved', 'ok');
        toast('Resume the endpoint first, then send again.', 'error');
    }""")
    page.clock.run_for(6000)
    assert page.locator("#toasts .toast.ok").count() == 0
    error = page.locator("#toasts .toast.error", has_text="Resume the endpoint first")
    assert error.is_visible()
    error.hover()
    page.clock.run_for(30000)  # held while the pointer rests on it
    assert error.is_visible()
    error.click()
    assert error.count() == 0
    page.context.close()


def test_a_skip_link_is_the_first_stop_and_leads_past_the_top_bar(
    browser: Any, site: Site
) -> None:
    # Each page began with five or six top-bar stops before its own content.
    page = signed_in(browser, site.live, PEOPLE["member"], width=1280)
    page.goto(f"{site.live.url}/f/lab/runs")
    page.keyboard.press("Tab")
    skip = page.locator(".skip-link")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    box = skip.bounding_box()
    assert box is not None and box["y"] >= 0  # shown once focused (off-screen before)
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('main') !== null")
    page.context.close()
