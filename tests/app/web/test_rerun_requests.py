"""Run again takes what POST /runs takes to start a run: `wait` (a wrong type is a 400
naming it), `interactive` and an `Idempotency-Key`. It ignored its body and the key: a
client retrying a rerun after a timeout started a second run."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app import db
from app.models import Run
from tests.app.web.test_access import CSRF
from tests.app.web.test_versions_api import call, clients

__all__ = ["clients"]  # the fixture, imported for pytest to find


def _rerun(
    client: FlaskClient, run_id: str, body: Any = None, key: str | None = None, **headers: str
) -> tuple[int, Any]:
    sent = {"X-CSRF-Token": CSRF, **headers}
    if key is not None:
        sent["Idempotency-Key"] = key
    answer = client.post(f"/api/f/lab/runs/{run_id}/rerun", json=body, headers=sent)
    return answer.status_code, answer.get_json()


def _post_run(client: FlaskClient, body: Any, key: str) -> tuple[int, Any]:
    headers = {"X-CSRF-Token": CSRF, "Idempotency-Key": key}
    answer = client.post("/api/f/lab/runs", json=body, headers=headers)
    return answer.status_code, answer.get_json()


def _runs() -> int:
    return db.session.scalar(select(func.count()).select_from(Run)) or 0


def _finished_run(client: FlaskClient, source: str = "result = 6 * 7") -> dict[str, Any]:
    status, run = call(client, "POST", "/runs", {"source": source, "wait": 30})
    assert status == 200, run
    return dict(run)


def test_a_wrong_value_is_a_400_naming_it(clients: dict[str, FlaskClient]) -> None:
    scripter = clients["scripter"]
    first = _finished_run(scripter)
    before = _runs()
    for body, field in (
        ({"wait": "x"}, "wait"),
        ({"wait": 301}, "wait"),  # POST /runs' bound
        ({"wait": -1}, "wait"),
        ({"interactive": "yes"}, "interactive"),
    ):
        status, refused = _rerun(scripter, first["id"], body)
        assert status == 400, (body, refused)
        assert refused["error"]["code"] == "invalid_input"
        assert refused["error"]["field"] == field
    assert _runs() == before


def test_wait_holds_the_rerun_until_it_ends(clients: dict[str, FlaskClient]) -> None:
    scripter = clients["scripter"]
    first = _finished_run(scripter)
    status, again = _rerun(scripter, first["id"], {"wait": 30})
    assert status == 200, again
    assert again["id"] != first["id"]
    assert (again["status"], again["result"]) == ("succeeded", 42)


def test_the_same_key_gives_the_first_rerun_and_another_request_a_conflict(
    clients: dict[str, FlaskClient],
) -> None:
    scripter = clients["scripter"]
    first = _finished_run(scripter)
    other = _finished_run(scripter, "result = 1")
    before = _runs()
    status, again = _rerun(scripter, first["id"], {"wait": 30}, key="rerun-1")
    assert status == 200, again
    # A retry after a timeout, waiting longer, less or not at all: the same run.
    for wait in (30, 0, None):
        status, retried = _rerun(scripter, first["id"], {"wait": wait}, key="rerun-1")
        assert (status, retried["id"]) == (200, again["id"]), retried
    assert _runs() == before + 1
    # The key with another request: another run's rerun, a rerun that may prompt, a POST
    # /runs. Each is the 409 POST /runs gives, and starts nothing; so is a rerun under a
    # key POST /runs used.
    assert _post_run(scripter, {"source": "result = 6 * 7"}, key="runs-1")[0] in (200, 201)
    before = _runs()
    clashes = [
        _rerun(scripter, other["id"], {}, key="rerun-1"),
        _rerun(scripter, first["id"], {"interactive": True}, key="rerun-1"),
        _post_run(scripter, {"source": "result = 6 * 7"}, key="rerun-1"),
        _rerun(scripter, first["id"], {}, key="runs-1"),
    ]
    for status, clash in clashes:
        assert status == 409, clash
        assert clash["error"]["field"] == "Idempotency-Key"
    assert _runs() == before


def test_a_retried_rerun_says_it_is_a_replay(clients: dict[str, FlaskClient]) -> None:
    scripter = clients["scripter"]
    first = _finished_run(scripter)
    headers = {"X-CSRF-Token": CSRF, "Idempotency-Key": "rerun-3"}
    path = f"/api/f/lab/runs/{first['id']}/rerun"
    started = scripter.post(path, json={"wait": 30}, headers=headers)
    retried = scripter.post(path, json={"wait": 30}, headers=headers)
    clash = scripter.post(path, json={"interactive": True}, headers=headers)
    assert [a.status_code for a in (started, retried, clash)] == [200, 200, 409]
    assert retried.get_json()["id"] == started.get_json()["id"]
    assert retried.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in started.headers
    assert "Idempotent-Replayed" not in clash.headers


def test_a_retried_rerun_whose_run_was_deleted_is_a_410(
    clients: dict[str, FlaskClient],
) -> None:
    scripter = clients["scripter"]
    first = _finished_run(scripter)
    status, again = _rerun(scripter, first["id"], {"wait": 30}, key="rerun-2")
    assert status == 200, again
    assert call(scripter, "DELETE", f"/runs/{again['id']}")[0] == 204
    before = _runs()
    status, gone = _rerun(scripter, first["id"], {"wait": 30}, key="rerun-2")
    assert status == 410, gone
    assert gone["error"]["code"] == "idempotency_key_run_deleted"
    assert gone["error"]["field"] == "Idempotency-Key"
    assert _runs() == before


def test_a_rerun_may_prompt_only_when_a_page_asks(
    app: Flask, clients: dict[str, FlaskClient]
) -> None:
    scripter = clients["scripter"]
    first = _finished_run(scripter)
    created = scripter.post("/api/tokens", json={"name": "ci"}, headers={"X-CSRF-Token": CSRF})
    bearer = {"Authorization": f"Bearer {created.get_json()['token']}"}
    api = app.test_client()
    asked = [
        (scripter, None, {}),
        (scripter, {"interactive": False}, {}),
        (scripter, {"interactive": True}, {}),
        (api, {"interactive": True}, bearer),  # an API token's runs never prompt
    ]
    interactive = []
    for client, body, headers in asked:
        status, again = _rerun(client, first["id"], body, **headers)
        assert status in (200, 201), again
        run = db.session.get(Run, again["id"])
        assert run is not None
        interactive.append(run.interactive)
    assert interactive == [False, False, True, False]
