"""The editor's run panel in Debian's Chromium: a run that goes on is picked up again after
a reload, and its Integration calls table says calls in words."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app import db, extensions
from app.models import Run
from app.services import connections, people
from app.testing import LiveServer
from tests.conftest import create_integration
from tests.e2e.people import add_script, scripter_lab, signed_in

pytestmark = pytest.mark.browser
# Nothing listens at the integration's address (tests.conftest.create_integration): the
# call is logged with an error and the facility's account.
UNREACHED = 'integrations.get("keyed", "/unreached", account="master")\n'
SPINNER = 'print("spinning")\nwhile True:\n    pass\n'
QUIET = 'print("no calls")\n'


@pytest.fixture
def live_lab(tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, int]]]:
    # Output reaches the run's row by each heartbeat: a reloaded page finds it there soon.
    with scripter_lab(tmp_path, HEARTBEAT_S=0.2) as live:
        with live.app.app_context():
            session = db.session()
            keyed = create_integration(
                session, facility=people.facility_by_slug(session, "lab"), key="keyed")
            connections.connect_with_credentials(
                session, integration=keyed, owner="master", user_id=None, label="",
                fields={"api_key": "unused"}, parameters={}, vault=extensions.vault())
            session.commit()
            db.session.remove()
        ids = {name: add_script(live, name=name, source=source)
               for name, source in (("Unreached", UNREACHED), ("Spinner", SPINNER),
                                    ("Quiet", QUIET))}
        yield live, ids


def test_the_calls_table_says_errors_and_accounts_in_words_with_their_codes_in_titles(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """The table showed the codes (integration_unavailable, master): words now, as the run
    page and the call log say them, the code still in the title."""
    live, ids = live_lab
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/editor/{ids['Unreached']}")
    page.click("#run-script")
    row = page.locator("#run-calls tbody tr", has_text="/unreached")
    row.wait_for(timeout=30000)
    status, account = row.locator("td").nth(1), row.locator("td").nth(2)
    assert (status.inner_text(), status.get_attribute("title")) == (
        "not reached", "integration_unavailable"
    )
    assert (account.inner_text(), account.get_attribute("title")) == (
        "the facility's account", "master"
    )
    page.context.close()


def test_a_reloaded_editor_picks_up_its_run_that_goes_on_and_stops_it(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """Reloaded while its run went on, the panel said "not run" with Run enabled and no
    Stop, and showed nothing of the run: it follows the run again, as after Run."""
    live, ids = live_lab
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/editor/{ids['Spinner']}")
    page.click("#run-script")
    page.locator("#run-output", has_text="spinning").wait_for(timeout=30000)
    page.reload()
    status = page.locator("#run-status")
    status.filter(has_text="running").wait_for()
    page.locator("#run-output", has_text="spinning").wait_for()
    with live.app.app_context():
        (run_id,) = db.session.scalars(select(Run.id)).all()
        db.session.remove()
    assert page.locator("#run-link").get_attribute("href") == f"/f/lab/runs/{run_id}"
    assert page.locator("#run-script").is_disabled()
    page.click("#cancel-run")
    status.filter(has_text="cancelled").wait_for(timeout=30000)
    assert page.locator("#cancel-run").is_hidden()
    assert page.locator("#run-script").is_enabled()
    page.context.close()


def test_the_history_lists_the_run_started_here_while_it_goes_on(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """The History was read only when the run ended: under a run going on it said "No runs
    of yours yet: press Run". It lists the run as running at once, then as it ends."""
    live, ids = live_lab
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/editor/{ids['Spinner']}")
    history = page.locator("#run-history tbody")
    history.get_by_text("No runs of yours yet").wait_for()
    page.click("#run-script")
    page.locator("#run-output", has_text="spinning").wait_for(timeout=30000)
    history.locator("tr", has_text="running").wait_for()
    page.click("#cancel-run")
    history.locator("tr", has_text="cancelled").wait_for(timeout=30000)
    assert history.locator("tr").count() == 1
    page.context.close()


def test_a_run_that_made_no_calls_says_so_in_the_run_pages_words(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """The Integration calls table showed its header row alone after a run that made no
    call: it says so, in the words the run's page says it with."""
    live, ids = live_lab
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/editor/{ids['Quiet']}")
    page.click("#run-script")
    page.locator("#run-status", has_text="succeeded").wait_for(timeout=30000)
    said = page.locator("#run-calls tbody tr")
    said.first.wait_for()
    assert said.count() == 1
    words = said.inner_text().strip()
    page.goto(f"{live.url}{page.locator('#run-link').get_attribute('href')}")
    assert words == "This run made no integration calls."
    page.get_by_text(words, exact=True).wait_for()
    page.context.close()
