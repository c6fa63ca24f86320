"""The runs list (API and page) narrows by what started a run (`trigger`) and by the
schedule that did (`schedule_id`): a member still sees only their own runs, and another
facility's schedule id finds none of that facility's runs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import db
from app.models import Role, Run, Schedule, Script
from tests.app.web.conftest import signed_in_client
from tests.conftest import add_member, create_facility, create_user


@dataclass
class Lab:
    """Admin Ada and member Mo of `lab`, their clients, and the ids of the runs by name."""

    ada: FlaskClient
    mo: FlaskClient
    runs: dict[str, str]
    nightly: int  # lab's schedule
    theirs: int  # the schedule of another facility, `far`


@pytest.fixture
def lab(app: Flask) -> Lab:
    session = db.session()
    lab = create_facility(session, slug="lab")
    far = create_facility(session, slug="far", name="Far")
    ada = create_user(session, email="ada@example.com", name="Ada")
    mo = create_user(session, email="mo@example.com", name="Mo")
    add_member(session, user=ada, facility=lab, role=Role.admin)
    add_member(session, user=mo, facility=lab, role=Role.member)
    add_member(session, user=ada, facility=far, role=Role.admin)
    schedules = {}
    for facility in (lab, far):
        script = Script(facility_id=facility.id, name="Nightly", source="x = 1", published=True)
        session.add(script)
        session.flush()
        schedule = Schedule(facility_id=facility.id, script_id=script.id, created_by=ada.id,
                            cron="0 3 * * *", timezone="Europe/Paris")
        session.add(schedule)
        session.flush()
        schedules[facility.slug] = schedule.id
    made = {
        "mo by hand": (lab, mo, "manual", None),
        "mo nightly": (lab, mo, "schedule", schedules["lab"]),
        "ada nightly": (lab, ada, "schedule", schedules["lab"]),
        "ada terminal": (lab, ada, "terminal", None),
        "far nightly": (far, ada, "schedule", schedules["far"]),
    }
    runs = {}
    for name, (facility, user, trigger, schedule_id) in made.items():
        run = Run(facility_id=facility.id, user_id=user.id, source="x = 1", status="succeeded",
                  trigger=trigger, schedule_id=schedule_id)
        session.add(run)
        session.flush()
        runs[run.id] = name
    session.commit()
    return Lab(signed_in_client(app, ada.id), signed_in_client(app, mo.id), runs,
               schedules["lab"], schedules["far"])


def listed(lab: Lab, http: FlaskClient, query: str) -> set[str]:
    answer = http.get(f"/api/f/lab/runs?{query}")
    assert answer.status_code == 200, answer.get_json()
    return {lab.runs[run["id"]] for run in answer.get_json()}


def test_trigger_narrows_the_list(lab: Lab) -> None:
    assert listed(lab, lab.ada, "trigger=schedule") == {"mo nightly", "ada nightly"}
    assert listed(lab, lab.ada, "trigger=terminal") == {"ada terminal"}
    assert listed(lab, lab.ada, "trigger=manual") == {"mo by hand"}
    assert listed(lab, lab.ada, "trigger=") == set(lab.runs.values()) - {"far nightly"}
    # A member: their own runs only, whatever the filter.
    assert listed(lab, lab.mo, "trigger=schedule") == {"mo nightly"}


def test_schedule_id_narrows_the_list_to_the_facilitys_schedule(lab: Lab) -> None:
    assert listed(lab, lab.ada, f"schedule_id={lab.nightly}") == {"mo nightly", "ada nightly"}
    assert listed(lab, lab.mo, f"schedule_id={lab.nightly}") == {"mo nightly"}
    # Another facility's schedule (Ada is its admin too): none of its runs come through lab.
    assert listed(lab, lab.ada, f"schedule_id={lab.theirs}") == set()
    assert listed(lab, lab.ada, f"schedule_id={lab.nightly}&trigger=manual") == set()


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ("trigger=cron", "trigger", "trigger must be one of manual, schedule, terminal"),
        ("schedule_id=nightly", "schedule_id", "schedule_id"),
    ],
)
def test_a_wrong_value_is_a_400_naming_it(lab: Lab, query: str, field: str, words: str) -> None:
    answer = lab.ada.get(f"/api/f/lab/runs?{query}")
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["field"] == field
    assert words in error["message"]


def test_the_page_says_it_shows_one_schedules_runs_and_clears_it(lab: Lab) -> None:
    page = lab.ada.get(f"/f/lab/runs?schedule_id={lab.nightly}&status=succeeded")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert (
        "Only runs started by the schedule <code>0 3 * * *</code> (Europe/Paris) of Nightly."
        in text
    )
    assert text.count('data-run-id="') == 2
    # The form keeps the schedule; clearing it keeps the other filters.
    assert f'<input type="hidden" name="schedule_id" value="{lab.nightly}">' in text
    assert 'id="clear-schedule" href="/f/lab/runs?status=succeeded"' in text
    # The export link holds the same filters.
    export = "/api/f/lab/runs/export?format=csv&amp;status=succeeded&amp;schedule_id="
    assert f"{export}{lab.nightly}" in text


def test_the_page_names_no_other_facilitys_schedule(lab: Lab) -> None:
    text = lab.ada.get(f"/f/lab/runs?schedule_id={lab.theirs}").get_data(as_text=True)
    assert f"schedule #{lab.theirs}, which is not a schedule of The Lab" in text
    assert "0 3 * * *" not in text
    assert 'data-run-id="' not in text


def test_the_page_filters_by_trigger(lab: Lab) -> None:
    text = lab.ada.get("/f/lab/runs?trigger=terminal").get_data(as_text=True)
    assert text.count('data-run-id="') == 1
    assert '<option value="terminal" selected>' in text
