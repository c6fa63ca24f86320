"""The runs page and one run's page (issue 11, item 1), in Debian's Chromium at 1280 and 375 px:
filters and pages, the script's traceback, re-run with the same input, stop, live states."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from app import db
from app.devprovider import ProviderConfig, create_provider_app, serve_in_thread
from app.models import Role, Run, Script, User
from app.testing import LiveServer
from tests.conftest import (
    add_member,
    close_live,
    create_facility,
    create_integration,
    create_user,
    make_app,
)
from tests.e2e.people import WIDTHS, fits, signed_in

pytestmark = pytest.mark.browser
API_KEY = "runs-page-key"
FAILS_DEEP = """def helper(n):
    print("helping", n)
    return 10 / n

def outer():
    return helper(input["n"])

result = outer()
"""
NEEDS_KEY = 'print("asking")\nresult = integrations.get("keyed", "/echo").status\n'
SPINNER = 'print("spinning")\nwhile True:\n    pass\n'
# Prints a numbered tick now and then until it is stopped (counting, not reading clocks:
# every clock reading is journalled, and there is a cap on them).
TICKER = """print("early")
for n in range(1, 100000):
    for _ in range(1000000):
        pass
    print("tick", n)
"""


@pytest.fixture(scope="module")
def keyapi() -> Iterator[str]:
    """A real API-key protected API on loopback."""
    provider = create_provider_app(ProviderConfig(api_keys={API_KEY: None}))
    with serve_in_thread(provider) as server:
        yield f"{server.url}/keyapi"


class Lab:
    """A served facility: admin Ada, scripter Sam, scripts, and 30 old runs of Sam's."""

    def __init__(self, tmp_path: Path, keyapi: str) -> None:
        self.app = make_app(tmp_path, PARK_AFTER_S=0, HEARTBEAT_S=0.2)
        self.live = LiveServer(self.app)
        with self.app.app_context():
            session = db.session()
            lab = create_facility(session, slug="lab")
            ada = create_user(session, email="ada@example.com", name="Ada Admin")
            sam = create_user(session, email="sam@example.com", name="Sam Scripter")
            add_member(session, user=ada, facility=lab, role=Role.admin)
            add_member(session, user=sam, facility=lab, role=Role.scripter)
            create_integration(session, facility=lab, key="keyed", name="Keyed API",
                               base_url=keyapi)
            scripts = {}
            for name, source in (("Fails deep", FAILS_DEEP), ("Needs key", NEEDS_KEY),
                                 ("Spinner", SPINNER), ("Hello", "result = 1\n"),
                                 ("Ticker", TICKER)):
                script = Script(facility_id=lab.id, name=name, source=source, published=True)
                session.add(script)
                session.flush()
                scripts[name] = script.id
            start = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
            for day in range(30):
                when = start + timedelta(days=day)
                session.add(Run(
                    facility_id=lab.id, script_id=scripts["Hello"], user_id=sam.id,
                    source="result = 1\n", input={}, status="failed" if day % 10 == 0
                    else "succeeded", created_at=when, started_at=when, finished_at=when,
                    duration_ms=12.0 + day, calls=0,
                    error_code="script_error" if day % 10 == 0 else None,
                ))
            session.add(Run(
                facility_id=lab.id, script_id=scripts["Hello"], user_id=ada.id,
                source="result = 1\n", input={}, status="succeeded", created_at=start,
                duration_ms=5.0, calls=0,
            ))
            session.commit()
            self.scripts = scripts

    def close(self) -> None:
        close_live(self.live)


@pytest.fixture
def lab(tmp_path: Path, keyapi: str) -> Iterator[Lab]:
    built = Lab(tmp_path, keyapi)
    yield built
    built.close()


def start_run(page: Any, script_id: int, run_input: Any = None) -> str:
    """Start a run from the page's own session (as its buttons do); the run's id."""
    run: dict[str, Any] = page.evaluate(
        """async ([scriptId, input]) => {
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch('/api/f/lab/runs', {method: 'POST', headers: {
              'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
              body: JSON.stringify({script_id: scriptId, input, interactive: true})});
            return await r.json();
        }""",
        [script_id, run_input or {}],
    )
    return str(run["id"])


@pytest.mark.parametrize("width", WIDTHS)
def test_a_scripter_filters_and_pages_their_own_runs(browser: Any, lab: Lab, width: int) -> None:
    page = signed_in(browser, lab.live, "sam@example.com", width=width)
    page.goto(f"{lab.live.url}/f/lab/runs")
    rows = page.locator("#runs-table tbody tr")
    assert rows.count() == 25
    assert page.locator(".pager").inner_text().count("30 runs") == 1  # not Ada's run
    assert "Ada Admin" not in page.locator("#runs-table").inner_text()
    fits(page, f"runs-scripter-{width}")
    page.click("a[rel=next]")
    assert rows.count() == 5
    page.select_option("select[name=status]", "failed")
    page.fill("input[name=since]", "2026-01-05")
    page.fill("input[name=until]", "2026-01-25")
    page.click("#run-filters button[type=submit]")
    page.wait_for_url(lambda url: "status=failed" in url)
    assert rows.count() == 2  # 11 and 21 January
    assert all(s == "failed" for s in rows.locator(".run-status").all_inner_texts())
    fits(page, f"runs-filtered-{width}")
    page.fill("input[name=since]", "2027-01-01")  # after the last day, 2026-01-25
    page.click("#run-filters button[type=submit]")
    page.get_by_text("The first day (2027-01-01) is after the last (2026-01-25): swap them.") \
        .wait_for()
    page.fill("input[name=until]", "2027-01-31")
    page.click("#run-filters button[type=submit]")
    page.get_by_text("No runs match these filters").wait_for()
    page.context.close()


def test_the_date_filters_mean_the_browsers_days(browser: Any, lab: Lab) -> None:
    """From and To are days where the browser is, as the list's times are: a run at half
    past midnight in Auckland, still the day before in UTC, is found on its Auckland day."""
    with lab.app.app_context():
        session = db.session()
        sam = session.query(User).filter_by(email="sam@example.com").one()
        hello = session.get(Script, lab.scripts["Hello"])
        assert hello is not None
        when = datetime(2026, 2, 10, 11, 30, tzinfo=UTC)  # 11 February 00:30 NZDT (+13)
        late = Run(facility_id=hello.facility_id, script_id=hello.id, user_id=sam.id,
                   source="result = 1\n", input={}, status="succeeded", created_at=when,
                   started_at=when, finished_at=when, duration_ms=3.0, calls=0)
        session.add(late)
        session.commit()
        late_id = late.id
    page = signed_in(browser, lab.live, "sam@example.com", timezone="Pacific/Auckland")
    page.goto(f"{lab.live.url}/f/lab/runs")
    rows = page.locator("#runs-table tbody tr")
    row = page.locator(f"tr[data-run-id='{late_id}']")
    started = row.locator("time").get_attribute("datetime")
    assert page.evaluate("(s) => new Date(s).getDate()", started) == 11  # the list's day
    page.fill("input[name=since]", "2026-02-11")
    page.fill("input[name=until]", "2026-02-11")
    page.click("#run-filters button[type=submit]")
    page.wait_for_url(lambda url: "since=2026-02-11" in url)
    assert rows.count() == 1 and row.count() == 1
    assert "tz=Pacific%2FAuckland" in page.url
    page.fill("input[name=since]", "2026-02-10")
    page.fill("input[name=until]", "2026-02-10")  # its UTC day, not the browser's
    page.click("#run-filters button[type=submit]")
    page.get_by_text("No runs match these filters").wait_for()
    page.context.close()


def test_an_admin_sees_everyones_runs_and_filters_by_user(browser: Any, lab: Lab) -> None:
    page = signed_in(browser, lab.live, "ada@example.com")
    page.goto(f"{lab.live.url}/f/lab/runs")
    assert "31 runs" in page.locator(".pager").inner_text()
    page.select_option("select[name=user_id]", label="Ada Admin")
    page.click("#run-filters button[type=submit]")
    page.wait_for_url(lambda url: "user_id=" in url)
    # Only the fields set (and the browser's zone the days are read in): the address once
    # carried `status=&trigger=&script_id=&since=&until=` too.
    assert [name for name, _ in parse_qsl(urlsplit(page.url).query, keep_blank_values=True)] == [
        "user_id", "tz"]
    assert page.locator("#runs-table tbody tr").count() == 1
    page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_run_shows_the_scripts_traceback_and_runs_again(
    browser: Any, lab: Lab, width: int
) -> None:
    page = signed_in(browser, lab.live, "sam@example.com", width=width)
    page.goto(f"{lab.live.url}/f/lab/runs")
    run_id = start_run(page, lab.scripts["Fails deep"], {"n": 0})
    page.goto(f"{lab.live.url}/f/lab/runs/{run_id}")
    page.locator("#run-status", has_text="failed").wait_for(timeout=30000)
    error = page.locator("#run-error")
    error.wait_for()
    assert "ZeroDivisionError" in error.inner_text()
    frames = page.locator(".traceback li").all_inner_texts()
    assert [f.split("\n")[0].split(",")[0] for f in frames] == ["line 8", "line 6", "line 3"]
    assert "in helper" in frames[2] and "return 10 / n" in frames[2]
    assert "helping 0" in page.locator("#run-output").inner_text()
    assert '"n": 0' in page.locator("#run-input").inner_text()
    fits(page, f"run-traceback-{width}")
    page.click("#rerun")
    page.wait_for_url(lambda url: url.rstrip("/").split("/")[-1] not in ("", run_id)
                      and "/runs/" in url)
    page.locator("#run-status", has_text="failed").wait_for(timeout=30000)
    assert '"n": 0' in page.locator("#run-input").inner_text()
    with lab.app.app_context():
        runs = db.session.query(Run).filter(Run.script_id == lab.scripts["Fails deep"]).all()
        assert sorted(r.input["n"] for r in runs) == [0, 0]
        # Run again from the page may ask for a sign-in there, as the run it repeats.
        assert [r.interactive for r in runs] == [True, True]
    page.context.close()


def test_the_list_follows_a_run_through_parked_to_its_end(browser: Any, lab: Lab) -> None:
    page = signed_in(browser, lab.live, "sam@example.com")
    page.goto(f"{lab.live.url}/f/lab/runs")
    page.locator("body[data-live=yes]").wait_for()  # the websocket is open
    run_id = start_run(page, lab.scripts["Needs key"])
    page.locator("#new-runs").wait_for()  # announced live
    # Reload only once the prompt is pending: a run that asks while no page of its user is
    # open is refused at once (DESIGN §4), and would never park.
    page.locator(".grant-prompt").wait_for(timeout=60000)
    page.click("#new-runs a")
    row = page.locator(f"tr[data-run-id='{run_id}']")
    row.locator(".run-status", has_text="parked").wait_for(timeout=30000)
    fits(page, "runs-parked-1280")
    page.locator(".grant-refuse").click()
    row.locator(".run-status", has_text="failed").wait_for(timeout=30000)
    page.context.close()


def test_a_row_whose_parked_run_is_stopped_stops_its_timer(browser: Any, lab: Lab) -> None:
    """A parked run that is stopped ends with no duration (nothing ran it to the end): its
    row says cancelled and its elapsed timer stops, rather than ticking on "so far"."""
    page = signed_in(browser, lab.live, "sam@example.com")
    page.goto(f"{lab.live.url}/f/lab/runs")
    page.locator("body[data-live=yes]").wait_for()  # an open page: the run may ask
    run_id = start_run(page, lab.scripts["Needs key"])
    page.locator(".grant-prompt").wait_for(timeout=60000)
    page.reload()
    row = page.locator(f"tr[data-run-id='{run_id}']")
    row.locator(".run-status", has_text="parked").wait_for(timeout=30000)
    row.locator(".elapsed", has_text="so far").wait_for()
    status = page.evaluate(
        """async (runId) => {
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch(`/api/f/lab/runs/${runId}/cancel`,
                                  {method: 'POST', headers: {'X-CSRF-Token': csrf}});
            return r.status;
        }""",
        run_id,
    )
    assert status == 200
    row.locator(".run-status", has_text="cancelled").wait_for(timeout=30000)
    page.wait_for_timeout(1500)  # the timers tick each second
    assert "so far" not in row.locator(".duration").inner_text()
    page.context.close()


def test_stop_ends_a_running_run_with_its_timer_ticking(browser: Any, lab: Lab) -> None:
    page = signed_in(browser, lab.live, "sam@example.com", width=375)
    page.goto(f"{lab.live.url}/f/lab/runs")
    run_id = start_run(page, lab.scripts["Spinner"])
    page.goto(f"{lab.live.url}/f/lab/runs/{run_id}")
    # Output reaches only the pages open when it is printed (it is stored when the run ends),
    # and "spinning" may come before this page is: the status says the run is under way.
    page.locator("#run-status", has_text="running").wait_for(timeout=30000)
    timer = page.locator("#run-duration .elapsed")
    timer.wait_for()
    first = timer.inner_text()
    page.wait_for_function(
        "(first) => document.querySelector('#run-duration .elapsed').textContent !== first",
        arg=first,
    )
    fits(page, "run-running-375")
    page.click("#stop-run")
    page.locator("#run-status", has_text="cancelled").wait_for(timeout=30000)
    assert page.locator("#stop-run").count() == 0
    page.context.close()


def ticks(page: Any) -> list[str]:
    return [line for line in page.locator("#run-output").inner_text().split("\n") if line]


@pytest.mark.parametrize("viewer", ["sam@example.com", "ada@example.com"])
def test_a_run_page_opened_late_shows_earlier_then_live_output_once(
    browser: Any, lab: Lab, viewer: str
) -> None:
    sams = signed_in(browser, lab.live, "sam@example.com")
    sams.goto(f"{lab.live.url}/f/lab/runs")
    run_id = start_run(sams, lab.scripts["Ticker"])
    with lab.app.app_context():  # opened once "early" and a few ticks were printed
        deadline = time.monotonic() + 60
        while "tick 3" not in (db.session.get(Run, run_id).output or ""):  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            db.session.remove()
            time.sleep(0.05)
    page = sams if viewer == "sam@example.com" else signed_in(browser, lab.live, viewer)
    page.goto(f"{lab.live.url}/f/lab/runs/{run_id}")
    assert ticks(page)[:4] == ["early", "tick 1", "tick 2", "tick 3"]  # stored before
    opened_at = len(ticks(page))
    page.wait_for_function(  # and it goes on live: three more ticks arrive on this page
        "(n) => document.querySelector('#run-output').innerText.trim().split('\\n').length >= n",
        arg=opened_at + 3, timeout=60000)
    shown = ticks(page)
    assert shown == ["early"] + [f"tick {i}" for i in range(1, len(shown))]  # no repeat, no gap
    if page is not sams:
        fits(page, "run-live-output-1280")
    page.click("#stop-run")
    page.locator("#run-status", has_text="cancelled").wait_for(timeout=30000)
    page.context.close()
    if page is not sams:
        sams.context.close()


def test_an_admins_list_follows_a_members_run_over_the_websocket(browser: Any, lab: Lab) -> None:
    sams = signed_in(browser, lab.live, "sam@example.com")
    sams.goto(f"{lab.live.url}/f/lab/runs")
    run_id = start_run(sams, lab.scripts["Spinner"])
    ada = signed_in(browser, lab.live, "ada@example.com")
    ada.goto(f"{lab.live.url}/f/lab/runs")
    ada.locator("body[data-live=yes]").wait_for()
    row = ada.locator(f"tr[data-run-id='{run_id}']")
    row.locator(".run-status", has_text="running").wait_for(timeout=30000)
    # From now on the page may learn of the run only over its websocket.
    asked: list[str] = []
    ada.route("**/api/f/lab/runs/**", lambda route: (asked.append(route.request.url),
                                                     route.abort()))
    assert sams.evaluate(
        """async (id) => (await fetch(`/api/f/lab/runs/${id}/cancel`, {method: 'POST',
            headers: {'X-CSRF-Token': document.querySelector('meta[name="csrf-token"]').content}
        })).status""", run_id) == 200
    row.locator(".run-status", has_text="cancelled").wait_for(timeout=30000)
    assert asked == []
    start_run(sams, lab.scripts["Hello"])
    ada.locator("#new-runs").wait_for()  # someone else's new run is announced too
    ada.context.close()
    sams.context.close()
