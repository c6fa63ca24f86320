"""GET /api/f/<slug>/runs/export: the runs list as a CSV or JSON Lines file, with the
list's filters and permissions, newest first, capped at MAX_EXPORT_ROWS, and safe to open
in a spreadsheet (text that would be a formula starts with ')."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert

from app import db
from app.models import Role, Run, Script, WebhookTrigger
from app.services.run_export import MAX_EXPORT_ROWS
from tests.app.web.conftest import signed_in_client
from tests.conftest import add_member, create_facility, create_user

COLUMNS = [
    "id", "script_id", "script", "version", "status", "trigger", "schedule_id",
    "webhook_trigger_id", "user_id", "user", "created_at", "started_at", "finished_at",
    "duration_ms", "error_code", "error",
]
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class Lab:
    """Admin Ada, members Mo and Max of `lab`, their clients and ids."""

    app: Flask
    ada: FlaskClient
    mo: FlaskClient
    ids: dict[str, int]


@pytest.fixture
def lab(app: Flask) -> Lab:
    """Runs of Mo (a failed one, a succeeded one) and of Max, by a script whose name and
    whose runner's name a spreadsheet would read as formulas."""
    session = db.session()
    lab = create_facility(session, slug="lab")
    ada = create_user(session, email="ada@example.com", name="Ada")
    mo = create_user(session, email="mo@example.com", name="-Mo")
    max_ = create_user(session, email="max@example.com", name="Max")
    add_member(session, user=ada, facility=lab, role=Role.admin)
    add_member(session, user=mo, facility=lab, role=Role.member)
    add_member(session, user=max_, facility=lab, role=Role.member)
    script = Script(facility_id=lab.id, name='=HYPERLINK("http://evil.example","x")',
                    source="x = 1", published=True)
    session.add(script)
    session.flush()
    rows = [
        (mo, "failed", "no_integration_grant", "refused", 0),
        (mo, "succeeded", None, None, 1),
        (max_, "succeeded", None, None, 2),
    ]
    for user, status, code, reason, minutes in rows:
        when = START + timedelta(minutes=minutes)
        session.add(Run(
            facility_id=lab.id, script_id=script.id, version=1, user_id=user.id,
            source="x = 1", status=status, error_code=code, error_reason=reason,
            error_message="secret-ish words", output="printed", result={"token": "t0p"},
            created_at=when, started_at=when, finished_at=when + timedelta(seconds=2),
            duration_ms=2000.0,
        ))
    session.commit()
    ids = {"lab": lab.id, "ada": ada.id, "mo": mo.id, "max": max_.id, "script": script.id}
    return Lab(app, signed_in_client(app, ada.id), signed_in_client(app, mo.id), ids)


def exported(http: FlaskClient, query: str = "") -> tuple[Any, list[dict[str, str]]]:
    """The answer and its CSV rows (as dicts by column)."""
    answer = http.get(f"/api/f/lab/runs/export?{query}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    lines = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
    assert lines[0] == COLUMNS
    return answer, [dict(zip(COLUMNS, line, strict=True)) for line in lines[1:]]


def test_a_csv_of_the_runs_newest_first_without_secrets(lab: Lab) -> None:
    # Written as it is read (the test client's answer holds its stream until read).
    assert lab.ada.get("/api/f/lab/runs/export").is_streamed
    answer, rows = exported(lab.ada)
    assert answer.mimetype == "text/csv"
    assert answer.headers["Content-Disposition"] == 'attachment; filename="runs-lab.csv"'
    assert answer.headers["Export-Total"] == "3"
    assert "Export-Truncated" not in answer.headers
    assert [r["user"] for r in rows] == ["Max", "'-Mo", "'-Mo"]
    failed = rows[2]
    assert failed["status"] == "failed" and failed["trigger"] == "manual"
    assert failed["created_at"] == "2026-03-01T09:00:00+00:00"
    assert failed["finished_at"] == "2026-03-01T09:00:02+00:00"
    assert failed["duration_ms"] == "2000.0"
    assert failed["error_code"] == "no_integration_grant"
    assert failed["error"].startswith("You chose not to sign in to A service.")
    assert failed["schedule_id"] == "" and rows[0]["error"] == ""
    # Neither output, result, input nor the script's own message goes into the file.
    text = answer.get_data(as_text=True)
    assert "printed" not in text and "t0p" not in text and "secret-ish" not in text


def test_a_run_a_webhook_trigger_started_names_it(lab: Lab) -> None:
    session = db.session()
    hook = WebhookTrigger(facility_id=lab.ids["lab"], script_id=lab.ids["script"],
                          owner_id=lab.ids["ada"], name="GitHub", token_hash="0" * 64)
    session.add(hook)
    session.flush()
    when = START + timedelta(minutes=5)
    session.add(Run(
        facility_id=lab.ids["lab"], script_id=lab.ids["script"], version=1,
        user_id=lab.ids["ada"], source="x = 1", status="succeeded", trigger="webhook",
        webhook_trigger_id=hook.id, created_at=when, started_at=when, finished_at=when,
    ))
    session.commit()
    _, rows = exported(lab.ada, "trigger=webhook")
    assert [(r["trigger"], r["webhook_trigger_id"]) for r in rows] == [("webhook", str(hook.id))]
    lines = lab.ada.get("/api/f/lab/runs/export?format=json").get_data(as_text=True)
    runs = [json.loads(line) for line in lines.splitlines()]
    assert [r["webhook_trigger_id"] for r in runs] == [hook.id, None, None, None]


def test_text_a_spreadsheet_would_run_starts_with_a_quote(lab: Lab) -> None:
    _, rows = exported(lab.ada)
    assert rows[0]["script"] == '\'=HYPERLINK("http://evil.example","x")'
    assert rows[1]["user"] == "'-Mo"
    with lab.app.app_context():
        session = db.session()
        for n, name in enumerate(("+1+1", "@SUM(A1)", "\tx", "-2", "a=1")):
            script = session.get(Script, lab.ids["script"])
            assert script is not None
            script.name = name
            session.commit()
            _, rows = exported(lab.ada)
            assert rows[0]["script"] == (name if name == "a=1" else f"'{name}"), n
        db.session.remove()


def test_a_member_exports_only_their_own_runs(lab: Lab) -> None:
    _, rows = exported(lab.mo)
    assert {r["user_id"] for r in rows} == {str(lab.ids["mo"])}
    assert len(rows) == 2
    # Asking for another member's runs does not widen it.
    _, rows = exported(lab.mo, f"user_id={lab.ids['max']}")
    assert {r["user_id"] for r in rows} == {str(lab.ids["mo"])}


def test_the_lists_filters_narrow_the_file(lab: Lab) -> None:
    answer, rows = exported(lab.ada, "status=failed")
    assert [r["status"] for r in rows] == ["failed"]
    assert answer.headers["Export-Total"] == "1"
    _, rows = exported(lab.ada, f"user_id={lab.ids['max']}&trigger=manual")
    assert [r["user"] for r in rows] == ["Max"]
    _, rows = exported(lab.ada, "trigger=schedule")
    assert rows == []
    _, rows = exported(lab.ada, "since=2026-03-02")
    assert rows == []


def test_json_lines_carry_the_same_columns(lab: Lab) -> None:
    answer = lab.mo.get("/api/f/lab/runs/export?format=json")
    assert answer.status_code == 200
    assert answer.mimetype == "application/x-ndjson"
    assert answer.headers["Content-Disposition"] == 'attachment; filename="runs-lab.jsonl"'
    runs = [json.loads(line) for line in answer.get_data(as_text=True).splitlines()]
    assert [list(run) for run in runs] == [COLUMNS, COLUMNS]
    assert runs[0]["user"] == "-Mo"  # no spreadsheet reads JSON: as it is
    assert runs[1]["schedule_id"] is None and runs[1]["duration_ms"] == 2000.0


@pytest.mark.parametrize(
    ("query", "field"),
    [("format=xlsx", "format"), ("statuss=failed", "statuss"), ("trigger=cron", "trigger"),
     ("limit=5", "limit"), ("since=2026-03-02&until=2026-03-01", "since")],
)
def test_a_wrong_query_is_a_400_naming_it(lab: Lab, query: str, field: str) -> None:
    answer = lab.ada.get(f"/api/f/lab/runs/export?{query}")
    assert answer.status_code == 400
    assert answer.get_json()["error"]["field"] == field


def test_a_file_holds_at_most_the_cap_newest_first_and_says_so(lab: Lab) -> None:
    with lab.app.app_context():
        db.session.execute(insert(Run), [
            {"facility_id": lab.ids["lab"], "user_id": lab.ids["ada"], "source": "",
             "status": "succeeded", "created_at": START + timedelta(hours=1, seconds=n)}
            for n in range(MAX_EXPORT_ROWS)
        ])
        db.session.commit()
        db.session.remove()
    answer, rows = exported(lab.ada)
    assert answer.headers["Export-Total"] == str(MAX_EXPORT_ROWS + 3)
    assert answer.headers["Export-Truncated"] == "true"
    assert len(rows) == MAX_EXPORT_ROWS
    newest = START + timedelta(hours=1, seconds=MAX_EXPORT_ROWS - 1)
    assert rows[0]["created_at"] == newest.isoformat()
    assert {r["user"] for r in rows} == {"Ada"}  # the three older runs were cut


def test_the_document_shows_the_export_as_files(app: Flask) -> None:
    document = app.test_client().get("/api/openapi.json").get_json()
    operation = document["paths"]["/api/f/{slug}/runs/export"]["get"]
    answer = operation["responses"]["200"]
    assert set(answer["content"]) == {"text/csv", "application/x-ndjson"}
    assert {"Content-Disposition", "Export-Total", "Export-Truncated"} <= set(answer["headers"])
    queries = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
    assert {"format", "trigger", "schedule_id", "status", "since", "tz"} <= queries
    assert "cursor" not in queries
    assert "RunExportFile" not in document["components"]["schemas"]


def test_the_runs_page_says_how_many_runs_the_download_holds_in_words(lab: Lab) -> None:
    # One run read "these 1 run, as the filters show them".
    one = lab.ada.get(f"/f/lab/runs?user_id={lab.ids['max']}").get_data(as_text=True)
    assert "this run, as the filters show them" in one and "these 1 run" not in one
    two = lab.mo.get("/f/lab/runs").get_data(as_text=True)
    assert "these 2 runs, as the filters show them" in two
