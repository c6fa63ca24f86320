"""The run page's Delete, in Debian's Chromium: shown once a run has ended, it asks first,
then the run is gone from the Runs page and its link says why; a run that goes on shows
Stop and no Delete."""

from __future__ import annotations

from typing import Any

import pytest

from app import db
from app.models import Role, Run, Script
from app.testing import LiveServer
from tests.conftest import add_member, create_facility, create_user
from tests.e2e.people import signed_in

pytestmark = pytest.mark.browser


@pytest.fixture
def sams_runs(live: LiveServer) -> dict[str, str]:
    """Sam, a member of lab, with an ended run and a queued one of the script Report."""
    with live.app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        sam = create_user(session, email="sam@example.com", name="Sam")
        add_member(session, user=sam, facility=lab, role=Role.member)
        script = Script(facility_id=lab.id, name="Report", source="result = 1", published=True)
        session.add(script)
        session.flush()
        runs = {
            status: Run(facility_id=lab.id, user_id=sam.id, script_id=script.id,
                        source="result = 1", status=status, output=f"{status} output")
            for status in ("succeeded", "queued")
        }
        session.add_all(runs.values())
        session.commit()
        return {status: run.id for status, run in runs.items()}


def test_delete_asks_then_the_run_is_gone(browser: Any, live: LiveServer,
                                         sams_runs: dict[str, str]) -> None:
    page = signed_in(browser, live, "sam@example.com")
    ended = sams_runs["succeeded"]
    page.goto(f"{live.url}/f/lab/runs/{ended}")
    asked: list[str] = []

    def answer(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss() if len(asked) == 1 else dialog.accept()

    page.on("dialog", answer)
    page.click("#delete-run")  # dismissed: nothing happens
    page.wait_for_timeout(300)
    assert page.url.endswith(f"/runs/{ended}")
    page.click("#delete-run")
    page.wait_for_url(f"{live.url}/f/lab/runs")
    assert "Delete this run with its input, output and result?" in asked[0]
    assert page.locator(f'tr[data-run-id="{ended}"]').count() == 0
    assert page.locator(f'tr[data-run-id="{sams_runs["queued"]}"]').count() == 1
    gone = page.goto(f"{live.url}/f/lab/runs/{ended}")
    assert gone is not None and gone.status == 404
    assert "old finished runs are deleted" in page.content()


def test_a_run_that_goes_on_has_stop_and_no_delete(browser: Any, live: LiveServer,
                                                  sams_runs: dict[str, str]) -> None:
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/runs/{sams_runs['queued']}")
    assert page.locator("#stop-run").is_visible()
    assert page.locator("#delete-run").count() == 0
