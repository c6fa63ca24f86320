"""The editor's run panel in Debian's Chromium: its Integration calls table in words."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import db, extensions
from app.services import connections, people
from app.testing import LiveServer
from tests.conftest import create_integration
from tests.e2e.people import add_script, scripter_lab, signed_in

pytestmark = pytest.mark.browser
# Nothing listens at the integration's address (tests.conftest.create_integration): the
# call is logged with an error and the facility's account.
UNREACHED = 'integrations.get("keyed", "/unreached", account="master")\n'


@pytest.fixture
def live_lab(tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, int]]]:
    with scripter_lab(tmp_path) as live:
        with live.app.app_context():
            session = db.session()
            keyed = create_integration(
                session, facility=people.facility_by_slug(session, "lab"), key="keyed")
            connections.connect_with_credentials(
                session, integration=keyed, owner="master", user_id=None, label="",
                fields={"api_key": "unused"}, parameters={}, vault=extensions.vault())
            session.commit()
            db.session.remove()
        ids = {"Unreached": add_script(live, name="Unreached", source=UNREACHED)}
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
    status, account = row.locator("td").nth(2), row.locator("td").nth(3)
    assert (status.inner_text(), status.get_attribute("title")) == (
        "not reached", "integration_unavailable"
    )
    assert (account.inner_text(), account.get_attribute("title")) == (
        "the facility's account", "master"
    )
    page.context.close()
