"""Issue 12.4: lists paginate with cursors; POST /runs honours an Idempotency-Key."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app import db
from app.models import CallLog, Facility, Role, Run, User
from app.models._types import utcnow
from app.testing import LiveServer, WebClient, signed_in_session
from tests.conftest import add_member, create_facility, create_user

CSRF = "csrf-token"


@pytest.fixture
def lab(app: Flask) -> dict[str, Any]:
    """Admin Ada and scripter Bo in `lab`; their test clients."""
    session = db.session()
    lab = create_facility(session, slug="lab")
    ada = create_user(session, email="ada@example.com")
    bo = create_user(session, email="bo@example.com")
    add_member(session, user=ada, facility=lab, role=Role.admin)
    add_member(session, user=bo, facility=lab, role=Role.scripter)
    session.commit()
    clients = {}
    for name, user in (("ada", ada), ("bo", bo)):
        client = app.test_client()
        with client.session_transaction() as cookie:
            cookie.update({**signed_in_session(app, user.id), "csrf": CSRF})
        clients[name] = client
    return {"facility": lab, "ada_id": ada.id, **clients}


def _all_pages(client: FlaskClient, path: str, limit: int) -> tuple[list[Any], int]:
    seen: list[Any] = []
    pages = 0
    url = f"{path}?limit={limit}"
    while True:
        answer = client.get(url)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        rows = answer.get_json()
        assert len(rows) <= limit
        seen += [row["id"] for row in rows]
        pages += 1
        cursor = answer.headers.get("Next-Cursor")
        if cursor is None:
            assert "Link" not in answer.headers
            return seen, pages
        assert f"cursor={cursor}" in answer.headers["Link"]
        url = f"{path}?limit={limit}&cursor={cursor}"


def test_runs_page_by_cursor_without_skips_or_repeats(lab: dict[str, Any]) -> None:
    session = db.session()
    facility: Facility = lab["facility"]
    now = utcnow()
    # Three runs share one instant: the cursor must order them by id as well.
    instants = [now, now, now, now - timedelta(seconds=1), now - timedelta(seconds=2)]
    for instant in instants:
        session.add(
            Run(facility_id=facility.id, user_id=lab["ada_id"], source="", created_at=instant)
        )
    session.commit()
    expected = [
        run.id
        for run in session.scalars(select(Run).order_by(Run.created_at.desc(), Run.id.desc()))
    ]
    seen, pages = _all_pages(lab["ada"], "/api/f/lab/runs", limit=2)
    assert seen == expected
    assert pages == 3


def test_runs_narrow_by_status_on_every_page(lab: dict[str, Any]) -> None:
    # `?status=failed` once answered every run: a client that deletes what it lists
    # would have deleted the succeeded ones too.
    session = db.session()
    now = utcnow()
    statuses = ["failed", "succeeded", "failed", "parked", "failed", "succeeded", "failed"]
    for n, status in enumerate(statuses):
        session.add(Run(facility_id=lab["facility"].id, user_id=lab["ada_id"], source="",
                        status=status, created_at=now - timedelta(seconds=n)))
    session.commit()
    expected = list(session.scalars(
        select(Run.id).where(Run.status == "failed").order_by(Run.created_at.desc())
    ))
    seen: list[str] = []
    url = "/api/f/lab/runs?status=failed&limit=3"
    while url:
        answer = lab["ada"].get(url)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert {row["status"] for row in answer.get_json()} == {"failed"}
        seen += [row["id"] for row in answer.get_json()]
        link = answer.headers.get("Link")
        url = link[link.index("/api/"):link.index(">")] if link else ""  # it keeps the filter
    assert seen == expected and len(seen) == 4
    parked = lab["ada"].get("/api/f/lab/runs?status=parked").get_json()
    assert [row["status"] for row in parked] == ["parked"]
    assert lab["bo"].get("/api/f/lab/runs?status=failed").get_json() == []  # Ada's runs
    wrong = lab["ada"].get("/api/f/lab/runs?status=broken")
    assert wrong.status_code == 400
    assert wrong.get_json()["error"]["field"] == "status"
    assert "waiting_for_grant" in wrong.get_json()["error"]["message"]


def test_runs_narrow_by_user_and_day_as_on_the_runs_page(lab: dict[str, Any]) -> None:
    # The Runs page had these filters; the API ignored them and answered every run.
    session = db.session()
    bo_id = session.scalar(select(User.id).where(User.email == "bo@example.com"))
    days = {"ada-old": (lab["ada_id"], "2026-03-01T10:00:00"),
            "ada-new": (lab["ada_id"], "2026-03-03T10:00:00"),
            "bo-new": (bo_id, "2026-03-03T23:30:00")}  # 2026-03-04 in Berlin
    ids = {}
    for name, (user_id, at) in days.items():
        run = Run(facility_id=lab["facility"].id, user_id=user_id, source="",
                  created_at=datetime.fromisoformat(at).replace(tzinfo=UTC))
        session.add(run)
        session.flush()
        ids[run.id] = name
    session.commit()

    def names(query: str, who: str = "ada") -> list[str]:
        answer = lab[who].get(f"/api/f/lab/runs?{query}")
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return [ids[row["id"]] for row in answer.get_json()]

    assert names(f"user_id={bo_id}") == ["bo-new"]
    assert names("since=2026-03-02") == ["bo-new", "ada-new"]
    assert names("until=2026-03-02") == ["ada-old"]
    assert names("since=2026-03-04&tz=Europe/Berlin") == ["bo-new"]
    assert names(f"user_id={lab['ada_id']}", who="bo") == ["bo-new"]  # a scripter: own runs
    for query, field in (("since=yesterday", "since"), ("tz=Mars/Base", "tz"),
                         ("since=2026-03-04&until=2026-03-01", "since")):
        wrong = lab["ada"].get(f"/api/f/lab/runs?{query}")
        assert wrong.status_code == 400 and wrong.get_json()["error"]["field"] == field, query
    swapped = lab["ada"].get("/api/f/lab/runs?since=2026-03-04&until=2026-03-01").get_json()
    assert "swap them" in swapped["error"]["message"]


def test_the_call_log_pages_by_cursor(lab: dict[str, Any]) -> None:
    session = db.session()
    for n in range(7):
        session.add(
            CallLog(
                facility_id=lab["facility"].id,
                integration_key="keyed",
                method="GET",
                path=f"/item/{n}",
                status=200,
            )
        )
    session.commit()
    seen, pages = _all_pages(lab["ada"], "/api/f/lab/calls", limit=3)
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == 7
    assert pages == 3


@pytest.mark.parametrize("cursor", ["nonsense", "W10", "WyJ4Il0", "WzEsMl0", "%00"])
def test_a_forged_cursor_is_a_400_naming_it(lab: dict[str, Any], cursor: str) -> None:
    for path in ("/api/f/lab/runs", "/api/f/lab/calls"):
        answer = lab["ada"].get(f"{path}?cursor={cursor}")
        assert answer.status_code == 400, (path, answer.get_data(as_text=True))
        assert answer.get_json()["error"]["field"] == "cursor"


def _start(client: FlaskClient, key: str | None, body: dict[str, Any]) -> Any:
    headers = {"X-CSRF-Token": CSRF}
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post("/api/f/lab/runs", json=body, headers=headers)


def _runs() -> int:
    return db.session.scalar(select(func.count()).select_from(Run)) or 0


def test_the_same_key_and_request_give_the_same_run(lab: dict[str, Any]) -> None:
    body = {"source": "result = 6 * 7", "wait": 30}
    first = _start(lab["bo"], "order-1", body)
    again = _start(lab["bo"], "order-1", body)
    assert first.status_code == again.status_code == 200
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.get_json()["result"] == 42
    assert _runs() == 1
    # Without a key every request is a new run.
    _start(lab["bo"], None, body)
    _start(lab["bo"], None, body)
    assert _runs() == 3


def test_only_a_repeated_request_says_it_is_a_replay(lab: dict[str, Any]) -> None:
    # As Stripe's: the client could not tell the run it started from one an earlier
    # request under the key started. The status stays the run's (200: it ended).
    body = {"source": "result = 6 * 7", "wait": 30}
    first = _start(lab["bo"], "order-6", body)
    again = _start(lab["bo"], "order-6", body)
    clash = _start(lab["bo"], "order-6", {"source": "result = 1"})
    unkeyed = _start(lab["bo"], None, body)
    statuses = [a.status_code for a in (first, again, clash, unkeyed)]
    assert statuses == [200, 200, 409, 200], again.get_json()
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert [a.headers.get("Idempotent-Replayed") for a in (first, clash, unkeyed)] == [None] * 3


def test_a_key_reused_with_another_request_is_a_conflict(lab: dict[str, Any]) -> None:
    assert _start(lab["bo"], "order-2", {"source": "result = 1"}).status_code in (200, 201)
    clash = _start(lab["bo"], "order-2", {"source": "result = 2"})
    assert clash.status_code == 409
    assert clash.get_json()["error"]["field"] == "Idempotency-Key"
    assert _runs() == 1


def test_a_retry_may_wait_longer_or_not_at_all(lab: dict[str, Any]) -> None:
    # `wait` is how long this request blocks, not what the run is: a client that timed
    # out and retries with a longer wait got a 409 and could not learn its run.
    first = _start(lab["bo"], "order-3", {"source": "result = 6 * 7", "wait": 0})
    for wait in (30, 0.5, None):
        again = _start(lab["bo"], "order-3", {"source": "result = 6 * 7", "wait": wait})
        assert again.status_code in (200, 201), again.get_json()
        assert again.get_json()["id"] == first.get_json()["id"]
    assert _runs() == 1


def test_a_key_outlives_its_deleted_run_and_a_retry_is_told_so(lab: dict[str, Any]) -> None:
    body = {"source": "result = 6 * 7", "wait": 30}
    first = _start(lab["bo"], "order-4", body)
    assert first.status_code == 200, first.get_json()
    run_id = first.get_json()["id"]
    deleted = lab["bo"].delete(f"/api/f/lab/runs/{run_id}", headers={"X-CSRF-Token": CSRF})
    assert deleted.status_code == 204
    # The retry a client sends after a timeout must not run the job a second time.
    retry = _start(lab["bo"], "order-4", body)
    assert retry.status_code == 410, retry.get_json()
    assert "Idempotent-Replayed" not in retry.headers  # nothing was answered again
    error = retry.get_json()["error"]
    assert error["code"] == "idempotency_key_run_deleted"
    assert error["field"] == "Idempotency-Key"
    assert "was deleted" in error["message"] and "new Idempotency-Key" in error["message"]
    assert _runs() == 0
    # Another request under that key is still a conflict; a new key starts a run.
    assert _start(lab["bo"], "order-4", {"source": "result = 1"}).status_code == 409
    assert _start(lab["bo"], "order-5", body).status_code == 200
    assert _runs() == 1


def test_keys_belong_to_one_user(lab: dict[str, Any]) -> None:
    body = {"source": "result = 1"}
    mine = _start(lab["bo"], "shared", body).get_json()["id"]
    theirs = _start(lab["ada"], "shared", body).get_json()["id"]
    assert mine != theirs and _runs() == 2


@pytest.mark.parametrize("key", ["", "k" * 201])
def test_an_empty_or_too_long_key_is_a_400(lab: dict[str, Any], key: str) -> None:
    answer = _start(lab["bo"], key, {"source": "result = 1"})
    assert answer.status_code == 400
    assert answer.get_json()["error"]["field"] == "Idempotency-Key"
    assert _runs() == 0


def test_concurrent_retries_with_one_key_start_one_run(live: LiveServer) -> None:
    with live.app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        bo = create_user(session, email="bo@example.com")
        add_member(session, user=bo, facility=lab, role=Role.scripter)
        session.commit()
        bo_id = bo.id
    browser = WebClient(live.app, live.url, bo_id)

    def retry(_: int) -> requests.Response:
        return browser.api(
            "POST",
            "/api/f/lab/runs",
            json={"source": "result = 1"},
            headers={"Idempotency-Key": "burst"},
        )

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(retry, range(6)))
    assert {a.status_code for a in answers} <= {200, 201}, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    # The one that started it says nothing; every other (found first, or after losing the
    # race to insert the key) is a replay.
    replayed = [a.headers.get("Idempotent-Replayed") for a in answers]
    assert (replayed.count(None), replayed.count("true")) == (1, len(answers) - 1)
    with live.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Run)) == 1
