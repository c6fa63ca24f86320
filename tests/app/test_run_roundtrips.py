"""What one `POST /runs` with `wait` costs the database: a ceiling on statements, not a timing.

The web path's speed is mostly its round trips around the sandbox (docs/performance.md,
`bench/roundtrips.py`); these ceilings keep a change from quietly adding them back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app import db
from app.models import Facility, Role, User
from app.services import scripts as scripts_service
from app.services.context import MemberContext
from app.testing import RoundTrips, signed_in_session
from tests.conftest import add_member, create_facility, create_user, make_app

# Sign-in check (session, user and membership in one query), INSERT, claim (one UPDATE
# counting the caps, returning what the driver reads), finish (one UPDATE ... RETURNING;
# the view answers from the row it returned, without reading the run again).
MAX_STATEMENTS = 4
MAX_COMMITS = 3  # the view's, the claim's, the finish's


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Flask, Any, str]]:
    """An app (its heartbeat never ticks during the test), a signed-in client, its CSRF."""
    app = make_app(tmp_path, HEARTBEAT_S=3600, MAX_RUNS_PER_USER=1)
    with app.app_context():
        session = db.session()
        facility = create_facility(session)
        user = create_user(session)
        add_member(session, user=user, facility=facility, role="scripter")
        session.commit()
        values = signed_in_session(app, user.id)
    db.session.remove()
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie.update(values)
    yield app, client, values["csrf"]
    app.extensions["heartbeat"].stop()
    app.extensions["sandbox"].close()


def settle(timeout: float = 10.0) -> None:
    """Wait until no thread drives a run (named `run-<id>` while it does)."""
    deadline = time.monotonic() + timeout
    while any(
        thread.name.startswith("run-") and thread.name not in ("run-idle", "run-heartbeat")
        for thread in threading.enumerate()
    ):
        assert time.monotonic() < deadline, [t.name for t in threading.enumerate()]
        time.sleep(0.01)


def post(client: Any, csrf: str, source: str, wait: float) -> dict[str, Any]:
    response = client.post(
        "/api/f/lab/runs", json={"source": source, "wait": wait}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    body: dict[str, Any] = response.json
    return body


def test_a_waited_run_stays_under_the_statement_ceiling(served: tuple[Flask, Any, str]) -> None:
    app, client, csrf = served
    assert post(client, csrf, "result = 1", 30)["status"] == "succeeded"  # warm: first sweep
    settle()  # the warm run's thread publishes its end after the answer: not counted here
    with RoundTrips(db.engine_of(app)) as counted:
        run = post(client, csrf, "result = 41 + 1", 30)
    assert run["status"] == "succeeded" and run["result"] == 42
    # Who started it, from the request's member context: no statement more for the name.
    assert run["user"] == {"id": run["user_id"], "name": "Ada"}
    sql, commits = counted.counts.get("web_sql", 0), counted.counts.get("web_commits", 0)
    assert 4 <= sql <= MAX_STATEMENTS, "\n".join(counted.statements)
    assert commits <= MAX_COMMITS, "\n".join(counted.statements)
    inserts = [s for s in counted.statements if s.startswith("INSERT INTO runs")]
    claims = [s for s in counted.statements if s.startswith("UPDATE runs SET status")]
    assert len(inserts) == 1 and len(claims) == 2  # queued -> running -> succeeded
    # No dispatch query after the run: nothing was queued behind it.
    assert not [s for s in counted.statements if "count(runs.id)" in s and s.startswith("SELECT")]
    assert counted.counts.get("web_threads", 0) <= 1


def test_a_run_over_the_cap_waits_and_starts_when_the_slot_opens(
    served: tuple[Flask, Any, str],
) -> None:
    """The direct claim refuses a run over the cap; the first run's end dispatches it."""
    _app, client, csrf = served
    first = post(client, csrf, "while True:\n    pass", 0)
    second = post(client, csrf, "result = 2", 0)
    assert second["status"] == "queued"  # MAX_RUNS_PER_USER=1 and the first one spins
    cancelled = client.post(
        f"/api/f/lab/runs/{first['id']}/cancel", headers={"X-CSRF-Token": csrf}
    )
    assert cancelled.status_code == 200, cancelled.get_data(as_text=True)
    assert _app.extensions["run_queue"].wait(second["id"], 30)
    done = client.get(f"/api/f/lab/runs/{second['id']}").json
    assert done["status"] == "succeeded" and done["result"] == 2
    # With nothing left waiting, the next run is claimed directly again.
    assert post(client, csrf, "result = 3", 30)["result"] == 3


def test_a_run_a_dispatch_started_before_its_submit_costs_its_submit_nothing(
    served: tuple[Flask, Any, str],
) -> None:
    """A dispatch (another request's, or the heartbeat's) may claim a run between its
    commit and its own submit. That submit must neither try the claim again nor take the
    failed claim for a full queue: each later submit would go through a whole dispatch,
    and those dispatches would take the next runs from their own submits in turn."""
    app, client, csrf = served
    assert post(client, csrf, "result = 1", 30)["status"] == "succeeded"
    settle()
    queue = app.extensions["run_queue"]
    with app.app_context():
        session = db.session()
        user = session.scalars(select(User)).one()
        facility = session.scalars(select(Facility)).one()
        member = MemberContext(user, facility, Role.scripter)
        run = scripts_service.create_run(
            session, member, script_id=None, source="result = 5", run_input=None,
            interactive=False)
        session.commit()
        run_id = run.id
    db.session.remove()
    assert queue.dispatch() == 1  # started before its submit came
    assert queue.wait(run_id, 30)["result"] == 5
    with RoundTrips(db.engine_of(app)) as counted:
        queue.submit(run_id)  # late: the run has ended already
        ended = queue.wait(run_id, 0)  # answered from the recent endings, no read
    assert ended is not None and ended["status"] == "succeeded"
    assert counted.statements == []
    with RoundTrips(db.engine_of(app)) as counted:  # and the next run is claimed directly
        assert post(client, csrf, "result = 6", 30)["result"] == 6
    assert not [s for s in counted.statements if "count(runs.id)" in s and s.startswith("SELECT")]
