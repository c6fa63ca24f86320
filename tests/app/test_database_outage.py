"""The database out of reach for a while (a restart, a failover): requests get a 503 in
words, work that must not be lost waits for it, and no live run is taken for dead because
nobody could renew it meanwhile (DESIGN §4: nothing stuck, nothing lost)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from app import db, extensions
from app.integrations.broker import Broker
from app.lifecycle import UNREACHABLE_MESSAGE
from app.models import CallLog, Run
from app.testing import SignedInClient
from tests.conftest import auth_less_lab, database_cut, make_app, stop_app

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

UPSTREAM_S = 2.0  # the upstream answers after this long: the outage begins meanwhile
CALLS_SLOW = 'r = integrations.get("slow", "/x")\nresult = r.json()["ok"]'


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = db.make_engine(postgres_url, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def select_one(engine: Engine, tries: list[float]) -> int:
    tries.append(time.monotonic())
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT 1")).scalar_one())


def test_work_that_must_not_be_lost_waits_for_the_database(postgres_url: str,
                                                           engine: Engine) -> None:
    answers: list[int] = []
    tries: list[float] = []
    with database_cut(postgres_url):
        waiter = threading.Thread(target=lambda: answers.append(db.until_reachable(
            lambda: select_one(engine, tries), what="a test", within_s=30)))
        waiter.start()
        # Tried meanwhile, again and again: two tries refused and a third begun before the
        # database answers again, however long a loaded machine takes for each refused
        # connection (a fixed 1.5 s was enough for three only when they were quick).
        deadline = time.monotonic() + 20
        while len(tries) < 3:
            assert time.monotonic() < deadline, tries
            time.sleep(0.05)  # polling another thread's tries: nothing to block on
    waiter.join(30)
    assert answers == [1]  # its answer, once the database answered again


def test_it_gives_up_after_its_time_and_at_once_on_a_wrong_statement(
        postgres_url: str, engine: Engine) -> None:
    # 2.5 s: tries at 0, 0.25, 0.75 and 1.75 s, then the next pause (2 s) would pass it.
    # Within 1 s the third try had to come within 0.25 s of refused connections, and the
    # last could begin past the deadline by a stalled sleep (both seen under load).
    within_s = 2.5
    tries: list[float] = []
    with database_cut(postgres_url), pytest.raises(OperationalError):
        db.until_reachable(lambda: select_one(engine, tries), what="a test", within_s=within_s)
    assert len(tries) >= 3  # tried again in between
    # No try after its time (one more would come at 3.75 s), a stalled sleep allowed for.
    assert tries[-1] - tries[0] <= within_s + 0.5

    wrong: list[int] = []

    def no_such_table() -> None:
        wrong.append(1)
        with engine.connect() as connection:
            connection.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(ProgrammingError):
        db.until_reachable(no_such_table, what="a test", within_s=10)
    assert wrong == [1]  # not a matter of reaching the database: not tried again


class Upstream:
    """A loopback service that answers each call UPSTREAM_S after it came; a test waits for
    the calls to come (and to be answered) rather than guessing how long a run takes to
    call out on a loaded machine."""

    def __init__(self) -> None:
        self._came = threading.Semaphore(0)
        self._answered = threading.Semaphore(0)
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, self._answer, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    @Request.application
    def _answer(self, _request: Request) -> Response:
        self._came.release()
        time.sleep(UPSTREAM_S)
        self._answered.release()
        return Response('{"ok": true}', 200, content_type="application/json")

    def came(self, count: int = 1) -> None:
        """Return once `count` more calls came in."""
        for _ in range(count):
            assert self._came.acquire(timeout=60), "no call came to the upstream"

    def answered(self, count: int = 1) -> None:
        """Return once `count` more calls were answered."""
        for _ in range(count):
            assert self._answered.acquire(timeout=60), "the upstream answered no call"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    service = Upstream()
    threading.Thread(target=service.server.serve_forever, daemon=True).start()
    yield service
    service.server.shutdown()
    service.server.server_close()


@pytest.fixture
def lab(tmp_path: Path, postgres_url: str, upstream: Upstream) -> Iterator[dict[str, Any]]:
    """The embedded server's app on PostgreSQL, beating every 0.2 s (an outage of a
    second is five beats: far past the three after which a silent run counts as dead),
    with a scripter and an auth-less integration to the slow upstream."""
    app = make_app(tmp_path, DATABASE_URL=postgres_url, HEARTBEAT_S=0.2)
    with app.app_context():
        user_id = auth_less_lab(upstream.url)(db.session())
        db.session.commit()
    db.session.remove()
    yield {"app": app, "browser": SignedInClient(app, user_id), "upstream": upstream}
    stop_app(app)


def start_slow_run(lab: dict[str, Any]) -> str:
    """Start a run of CALLS_SLOW; its id once its call is out (it waited a fixed 1 s; a cut
    before the call went out, as on a loaded machine, ended the run `interrupted`)."""
    started = lab["browser"].call("POST", "/api/f/lab/runs", json={"source": CALLS_SLOW})
    assert started.status_code == 201, started.json
    lab["upstream"].came()
    return str(started.json["id"])


def ended(browser: SignedInClient, run_id: str) -> dict[str, Any]:
    """The run as the API shows it once it left `queued` and `running`."""
    deadline = time.monotonic() + 30
    while (run := browser.call("GET", f"/api/f/lab/runs/{run_id}").json)["status"] in (
            "queued", "running"):
        assert time.monotonic() < deadline, run
        time.sleep(0.1)
    return dict(run)


def test_a_request_meanwhile_gets_a_503_in_words_and_the_next_one_works(
        lab: dict[str, Any], postgres_url: str) -> None:
    browser: SignedInClient = lab["browser"]
    with database_cut(postgres_url):
        answer = browser.call("GET", "/api/f/lab/runs")
        page = browser.call("GET", "/f/lab/runs")
        health = browser.call("GET", "/healthz")  # a load balancer sees it
    assert answer.status_code == 503
    assert answer.json["error"]["code"] == "database_unavailable"
    assert "cannot reach its database right now" in answer.json["error"]["message"]
    assert answer.headers["Retry-After"] == "5"
    assert page.status_code == 503
    assert "Try again in a moment" in page.get_data(as_text=True)
    assert health.status_code == 503
    assert browser.call("GET", "/api/f/lab/runs").status_code == 200


def test_a_run_that_ends_during_an_outage_keeps_its_outcome_and_its_call(
        lab: dict[str, Any], postgres_url: str) -> None:
    app, browser = lab["app"], lab["browser"]
    run_id = start_slow_run(lab)
    with database_cut(postgres_url):
        lab["upstream"].answered()  # it comes back meanwhile
        time.sleep(UPSTREAM_S / 2)  # and its outcome waits for the database
    run = ended(browser, run_id)
    # Not `interrupted`: the sweep did not take the run nobody could renew for dead.
    assert (run["status"], run["result"], run["error"]) == ("succeeded", True, None)
    with app.app_context():
        calls = db.session.scalars(select(CallLog).where(CallLog.run_id == run_id)).all()
        assert [call.status for call in calls] == [200]  # the usage counts it
        assert db.session.get_one(Run, run_id).calls == 1
    db.session.remove()


def test_an_outage_longer_than_the_drivers_wait_still_keeps_the_outcome(
        lab: dict[str, Any], postgres_url: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Past `UNREACHABLE_RETRY_S` the driver's thread lets the run go, and the heartbeat
    keeps it: renewed, and its outcome written on the first beat the database answers.
    The call-log writer waits for the database as long as it takes."""
    monkeypatch.setattr(db, "UNREACHABLE_RETRY_S", 0.5)
    caplog.set_level(logging.INFO, logger="app.runner.heartbeat")
    app, browser = lab["app"], lab["browser"]
    run_id = start_slow_run(lab)
    with database_cut(postgres_url):
        # The call comes back, the driver gives up on the database and hands the run over.
        deadline = time.monotonic() + 30
        while "waits for the database; it is tried again on every beat" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.1)
        time.sleep(1.0)  # five beats with the database out of reach
    run = ended(browser, run_id)
    assert (run["status"], run["result"], run["error"]) == ("succeeded", True, None)
    assert f"storing the outcome of run {run_id} went through on a later beat" in caplog.text
    with app.app_context():
        assert db.session.get_one(Run, run_id).calls == 1
        # The call's row waited for the database too, past the driver's wait.
        deadline = time.monotonic() + 30
        while not (calls := db.session.scalars(
                select(CallLog.status).where(CallLog.run_id == run_id)).all()):
            assert time.monotonic() < deadline
            db.session.rollback()
            time.sleep(0.1)
        assert calls == [200]
    db.session.remove()
    assert extensions.heartbeat(app).local_runs() == []  # let go once stored


@pytest.mark.parametrize("wait", [0, 1])
def test_a_run_stored_before_its_claim_met_an_outage_is_answered_and_starts_later(
        lab: dict[str, Any], postgres_url: str, monkeypatch: pytest.MonkeyPatch,
        wait: int) -> None:
    """The database stops answering between the run's insert and its claim, and (with
    `wait`) stays out past the wait: the request answers with the stored, queued run (a
    503 would be retried into a second run), and a beat's dispatch starts it once the
    database answers."""
    app, browser = lab["app"], lab["browser"]
    extensions.heartbeat(app).start()  # as `scriptbox serve` does before any request
    queue = extensions.run_queue(app)
    claim = queue._claim
    cut: list[str] = []
    outage = contextlib.ExitStack()

    def claim_in_an_outage(run_id: str, *, resuming: bool) -> Any:
        if not cut:
            cut.append(run_id)
            outage.enter_context(database_cut(postgres_url))
        return claim(run_id, resuming=resuming)

    monkeypatch.setattr(queue, "_claim", claim_in_an_outage)
    with outage:
        started = browser.call("POST", "/api/f/lab/runs",
                               json={"source": "result = 7", "wait": wait})
    assert started.status_code == 201, started.json
    assert (started.json["id"], started.json["status"]) == (cut[0], "queued")
    run = ended(browser, started.json["id"])
    assert (run["status"], run["result"]) == ("succeeded", 7)
    assert len(browser.call("GET", "/api/f/lab/runs").json) == 1


def test_a_run_that_loses_the_database_before_its_call_says_so(
        lab: dict[str, Any], postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database goes away as the run's call is looked up, before it goes out: the
    driver ends the run `interrupted` saying the database could not be reached (left to
    the sweep, it said the server stopped, which it did not), and the call never goes out."""
    monkeypatch.setattr(db, "UNREACHABLE_RETRY_S", 0.5)  # past it the heartbeat keeps it
    browser = lab["browser"]
    serve = Broker.handler
    outage = contextlib.ExitStack()
    cut = threading.Event()

    def handler_cut_first(broker: Broker, ctx: Any) -> Any:
        on_call = serve(broker, ctx)

        def call(host_call: Any) -> Any:
            outage.enter_context(database_cut(postgres_url))
            cut.set()
            return on_call(host_call)
        return call

    monkeypatch.setattr(Broker, "handler", handler_cut_first)
    with outage:
        started = browser.call("POST", "/api/f/lab/runs", json={"source": CALLS_SLOW})
        assert started.status_code == 201, started.json
        assert cut.wait(60), "the run made no call"
        time.sleep(1.0)  # five beats with the database out of reach
    run = ended(browser, str(started.json["id"]))
    assert run["status"] == "failed"
    assert run["error"]["code"] == "interrupted"
    assert run["error"]["message"] == UNREACHABLE_MESSAGE
    assert run["calls"] == 0
    assert not lab["upstream"]._came.acquire(timeout=0)  # it never went out
