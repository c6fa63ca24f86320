"""The runs page's From/To days are days in the browser's zone (`tz`, an IANA name; UTC
without one), right on either side of a DST change; a value the page cannot read (a zone
that is not one, a day that is not one...) is said by the filter form, and the calendar's
first and last days never make a 500."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import db
from app.models import Facility, Role, Run, Script
from app.services.run_filters import RunFilters
from app.testing import signed_in_session
from tests.conftest import add_member, create_facility, create_user

# Around Paris's change to summer time (29 March 2026, 02:00 CET -> 03:00 CEST).
RUNS = {
    "28th late": datetime(2026, 3, 28, 22, 30, tzinfo=UTC),  # 28 Mar 23:30 CET
    "29th early": datetime(2026, 3, 28, 23, 30, tzinfo=UTC),  # 29 Mar 00:30 CET
    "29th late": datetime(2026, 3, 29, 21, 30, tzinfo=UTC),  # 29 Mar 23:30 CEST
    "30th early": datetime(2026, 3, 29, 22, 30, tzinfo=UTC),  # 30 Mar 00:30 CEST
}


@pytest.fixture
def client(app: Flask) -> tuple[FlaskClient, dict[str, str]]:
    """Ada (admin of `lab`) signed in, and her runs by name."""
    session = db.session()
    lab = create_facility(session, slug="lab")
    ada = create_user(session, email="ada@example.com")
    add_member(session, user=ada, facility=lab, role=Role.admin)
    runs = {}
    for name, when in RUNS.items():
        run = Run(facility_id=lab.id, user_id=ada.id, source="result = 1", status="succeeded",
                  created_at=when)
        session.add(run)
        runs[name] = run
    session.commit()
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie.update(signed_in_session(app, ada.id))
    return client, {run.id: name for name, run in runs.items()}


def shown(client: tuple[FlaskClient, dict[str, str]], query: str) -> list[str]:
    """The names of the runs the page lists for `query`, oldest first."""
    http, names = client
    response = http.get(f"/f/lab/runs?{query}")
    assert response.status_code == 200, response.text
    return sorted(
        (names[i] for i in re.findall(r'data-run-id="([^"]+)"', response.text)),
        key=list(RUNS).index,
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # One Paris day, whichever side of the change: no fixed offset gets all four right.
        ("since=2026-03-29&until=2026-03-29&tz=Europe/Paris", ["29th early", "29th late"]),
        ("since=2026-03-30&tz=Europe/Paris", ["30th early"]),
        ("until=2026-03-28&tz=Europe/Paris", ["28th late"]),
        # No zone: UTC days, as before.
        ("since=2026-03-29&until=2026-03-29", ["29th late", "30th early"]),
        ("since=2026-03-29&until=2026-03-29&tz=", ["29th late", "30th early"]),
        ("since=2026-03-29&until=2026-03-29&tz=UTC", ["29th late", "30th early"]),
        # A zone alone filters nothing.
        ("tz=Pacific/Auckland", list(RUNS)),
        # The calendar's ends, beyond what a datetime holds once moved to UTC.
        ("since=0001-01-01&tz=Pacific/Auckland", list(RUNS)),
        ("until=9999-12-31&tz=America/Los_Angeles", list(RUNS)),
        ("until=9999-12-31", list(RUNS)),
        ("since=9999-12-31&tz=America/Los_Angeles", []),
        ("until=0001-01-01&tz=Pacific/Auckland", []),
    ],
)
def test_the_days_are_the_zones(
    client: tuple[FlaskClient, dict[str, str]], query: str, expected: list[str]
) -> None:
    assert shown(client, query) == expected


@pytest.mark.parametrize(
    "zone",
    ["Mars/Olympus", "utc", "America", "America/", "../../etc/passwd", "/etc/localtime",
     "zone.tab", "Europe/Paris ", "x" * 1000, "%s" * 40],
)
def test_a_zone_that_is_not_one_is_said_by_the_form(
    client: tuple[FlaskClient, dict[str, str]], zone: str
) -> None:
    http, _ = client
    response = http.get("/f/lab/runs", query_string={"since": "2026-03-29", "tz": zone})
    assert response.status_code == 200
    assert "The time zone takes a name like Europe/Paris, not" in response.text
    assert 'data-run-id="' not in response.text


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("since=garbage", "From takes a day like 2026-01-31, not “garbage”."),
        ("until=2026-13-45", "To takes a day like 2026-01-31, not “2026-13-45”."),
        ("script_id=abc", "Script takes one of the scripts in its list, not “abc”."),
        ("status=nope", "Status takes one of the statuses in its list, not “nope”."),
        ("trigger=cron", "Started by takes one of the choices in its list, not “cron”."),
        ("user_id=1.5", "User takes one of the members in its list, not “1.5”."),
        ("schedule_id=x", "The schedule filter takes a schedule's number, not “x”."),
    ],
)
def test_a_hand_edited_filter_is_said_by_the_form_not_a_400_page(
    client: tuple[FlaskClient, dict[str, str]], query: str, said: str
) -> None:
    """A filter the page cannot read names the form's field and what it takes, and lists
    no run: never every run as if it had filtered them (it was a whole 400 page, "Since
    must be a date like 2026-01-31")."""
    http, _ = client
    response = http.get(f"/f/lab/runs?{query}")
    assert response.status_code == 200
    problems = re.findall(r'<p class="error filter-problem">([^<]*)</p>', response.text)
    assert [html.unescape(p) for p in problems] == [said]
    assert 'data-run-id="' not in response.text
    assert 'id="run-filters"' in response.text


def test_the_other_filters_stay_beside_a_wrong_one(
    client: tuple[FlaskClient, dict[str, str]],
) -> None:
    http, _ = client
    response = http.get("/f/lab/runs?status=failed&since=2026-03-29&until=soon&page=x")
    assert response.status_code == 200
    problems = re.findall(r'<p class="error filter-problem">([^<]*)</p>', response.text)
    assert [html.unescape(p) for p in problems] == ["To takes a day like 2026-01-31, not “soon”."]
    assert '<option value="failed" selected>' in response.text
    assert 'name="since" value="2026-03-29"' in response.text
    kept = re.search(r'<a id="keep-filters" href="([^"]*)"', response.text)
    assert kept is not None
    assert html.unescape(kept.group(1)) == "/f/lab/runs?status=failed&since=2026-03-29"
    # A page number that is not one is the first page.
    assert shown(client, "page=x") == list(RUNS)


def test_links_keep_the_zone_only_with_a_day() -> None:
    assert RunFilters.parse({"tz": "Europe/Paris"}).as_args() == {}
    assert RunFilters.parse({"since": "2026-03-29", "tz": "Europe/Paris"}).as_args() == {
        "since": "2026-03-29",
        "tz": "Europe/Paris",
    }


def test_a_link_that_clears_one_filter_keeps_the_others() -> None:
    """The Runs page's notices clear the schedule or the webhook trigger they name."""
    filters = RunFilters.parse({
        "status": "failed", "schedule_id": "3", "webhook_trigger_id": "4",
        "since": "2026-03-29", "tz": "Europe/Paris",
    })
    kept = {"status": "failed", "since": "2026-03-29", "tz": "Europe/Paris"}
    assert filters.as_args(without={"schedule_id"}) == {**kept, "webhook_trigger_id": "4"}
    assert filters.as_args(without={"webhook_trigger_id"}) == {**kept, "schedule_id": "3"}
    assert filters.as_args() == {**kept, "schedule_id": "3", "webhook_trigger_id": "4"}


def test_a_first_day_after_the_last_says_to_swap_them(
    client: tuple[FlaskClient, dict[str, str]],
) -> None:
    """It used to say only "No runs match these filters"."""
    http, _ = client
    response = http.get("/f/lab/runs", query_string={"since": "2026-03-30", "until": "2026-03-29"})
    assert response.status_code == 200
    assert "The first day (2026-03-30) is after the last (2026-03-29): swap them." in response.text
    assert "No runs match these filters" not in response.text
    assert shown(client, "since=2026-03-29&until=2026-03-29&tz=UTC")  # one day is a range


def test_scripts_of_one_name_are_told_apart_in_the_filter(
    client: tuple[FlaskClient, dict[str, str]],
) -> None:
    # Two scripts named "Slow" were two "Slow" options, one of them the wrong script.
    session = db.session()
    lab_id = session.scalar(select(Facility.id).where(Facility.slug == "lab"))
    slow = [Script(facility_id=lab_id, name="Slow", source="result = 1") for _ in range(2)]
    session.add_all([*slow, Script(facility_id=lab_id, name="Fast", source="result = 1")])
    session.commit()
    page = client[0].get("/f/lab/runs").text
    options = re.findall(r'<option value="(\d+)">([^<]*)</option>', page)
    named = {name for _, name in options}
    assert {f"Slow (#{script.id})" for script in slow} <= named, options
    assert "Fast" in named and "Slow" not in named
