"""Publishing and the editor's readiness compile a source in a sandbox worker, within
SCRIPTBOX_COMPILE_TIME_S, never in the web process (DESIGN §6): the real pool, no mocks
(but for the count of checks at once, whose test holds checks with a stand-in)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import db
from app.config import ConfigError
from app.errors import CheckerBusy, CheckerUnavailable
from app.models import Facility, Role
from app.runner.checks import sandbox_checker
from sandbox import MAX_SOURCE_BYTES, Executor, SourceCheck
from tests.app.web.test_access import CSRF, client_for
from tests.conftest import (
    add_member,
    create_facility,
    create_integration,
    create_user,
    make_app,
    signed_in_lab,
)

CALLS_GITHUB = "data = integrations.get('github', '/user')\n"


def slow_to_compile(size: int) -> str:
    """A script of about `size` bytes that names a call, then one f-string of fields:
    CPython 3.11's parser needs seconds for it (its work grows with the square of the
    fields), holding the GIL all along."""
    return CALLS_GITHUB + "x = f'" + "{a}" * ((size - len(CALLS_GITHUB) - 8) // 3) + "'\n"


@pytest.fixture
def scripter(app: Flask) -> FlaskClient:
    session = db.session()
    lab = create_facility(session, slug="lab")
    user = create_user(session, email="scripter@example.com")
    add_member(session, user=user, facility=lab, role=Role.scripter)
    session.commit()
    return client_for(app, user.id)


def call(client: FlaskClient, method: str, path: str, body: Any = None) -> Any:
    response = client.open(
        f"/api/f/lab{path}", method=method, json=body, headers={"X-CSRF-Token": CSRF}
    )
    return response.status_code, response.get_json()


def test_valid_sources_publish_and_broken_ones_are_refused_naming_their_line(
    scripter: FlaskClient,
) -> None:
    status, made = call(
        scripter,
        "POST",
        "/scripts",
        {"name": "Fine", "source": CALLS_GITHUB + "result = 1", "published": True},
    )
    assert (status, made["published_version"]) == (201, 1)
    status, _ = call(scripter, "PATCH", f"/scripts/{made['id']}", {"source": "a = 1\nb = (\n"})
    assert status == 200
    status, refused = call(scripter, "POST", f"/scripts/{made['id']}/versions/2/publish")
    assert status == 400 and (refused["error"]["field"], refused["error"]["line"]) == (
        "source",
        2,
    )
    assert refused["error"]["message"].startswith("version 2 does not compile (line 2: Syntax")
    status, ready = call(scripter, "POST", "/readiness", {"source": CALLS_GITHUB})
    assert (status, [item["key"] for item in ready]) == (200, ["github"])


def test_readiness_of_a_source_that_does_not_parse_says_so_not_that_it_calls_nothing(
    scripter: FlaskClient,
) -> None:
    # Half typed: its call cannot be read, so the editor must not say it calls no integration.
    status, refused = call(
        scripter, "POST", "/readiness", {"source": "x = 1\n" + CALLS_GITHUB.replace(")", "")}
    )
    assert status == 400, refused
    error = refused["error"]
    assert (error["field"], error["line"]) == ("source", 2)
    assert error["message"].startswith("This script does not compile (line 2: Syntax")
    assert error["message"].endswith(": the integrations it calls are listed once it does")
    # One that parses but breaks a sandbox rule still lists the calls it names.
    status, ready = call(scripter, "POST", "/readiness", {"source": CALLS_GITHUB + "_x = 1\n"})
    assert (status, [item["key"] for item in ready]) == (200, ["github"])


def test_a_source_past_the_compile_limit_is_refused_in_words(
    app: Flask, scripter: FlaskClient
) -> None:
    app.config["COMPILE_TIME_S"] = 0.3
    source = slow_to_compile(MAX_SOURCE_BYTES)
    status, made = call(scripter, "POST", "/scripts", {"name": "Slow", "source": source})
    assert status == 201  # saving does not compile
    sid = made["id"]
    for method, path, body in (
        ("PATCH", f"/scripts/{sid}", {"published": True}),  # the editor's Published box
        ("POST", f"/scripts/{sid}/versions/1/publish", None),
        ("POST", "/readiness", {"source": source}),
    ):
        status, refused = call(scripter, method, path, body)
        assert status == 400, (path, refused)
        error = refused["error"]
        assert error["field"] == "source"
        assert error["message"].startswith("This script took too long to check (over 0.3 s)")
        assert "Split it into smaller scripts or simplify it" in error["message"]
    status, script = call(scripter, "GET", f"/scripts/{sid}")
    assert (script["published"], script["published_version"]) == (False, None)


def _parse_cpu_seconds(source: str) -> float:
    """The CPU time another interpreter spends parsing source (what publishing it costs
    whichever process compiles it)."""
    measured = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            "import ast, sys, time; s = sys.stdin.read(); t = time.process_time();"
            " ast.parse(s); print(time.process_time() - t)",
        ],
        input=source,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return float(measured.stdout)


def test_the_compile_does_not_use_the_web_process(app: Flask, scripter: FlaskClient) -> None:
    # Not a speed test: the web process's CPU time is compared with the parse's own, which
    # (holding the GIL) stalled every other request and run of the process while it ran.
    app.config["COMPILE_TIME_S"] = 120  # room to finish on a busy machine
    source = slow_to_compile(MAX_SOURCE_BYTES * 3 // 4)
    status, made = call(scripter, "POST", "/scripts", {"name": "Slow", "source": source})
    assert status == 201
    call(scripter, "POST", "/readiness", {"source": CALLS_GITHUB})  # the pool is up
    before = time.process_time()
    status, published = call(scripter, "POST", f"/scripts/{made['id']}/versions/1/publish")
    web_cpu = time.process_time() - before
    assert (status, published["number"], published["published"]) == (200, 1, True)
    assert web_cpu < _parse_cpu_seconds(source) / 3


@pytest.mark.parametrize("value", [0, -1, 301, "soon", True, None])
def test_a_compile_limit_that_is_not_seconds_refuses_to_start(
    tmp_path: Path, value: object
) -> None:
    with pytest.raises(ConfigError, match="SCRIPTBOX_COMPILE_TIME_S"):
        make_app(tmp_path, COMPILE_TIME_S=value)


def test_an_integrations_dependents_name_a_script_too_slow_to_read(app: Flask) -> None:
    # Read in a worker too; one past the limit is named, so deleting the integration still
    # warns of it (it may well call it).
    app.config["COMPILE_TIME_S"] = 0.3
    clients = signed_in_lab(app, roles=[Role.admin, Role.scripter], csrf=CSRF)
    session = db.session()
    lab = session.scalars(select(Facility)).one()
    create_integration(session, facility=lab, key="github")
    session.commit()
    for name, source in (
        ("Calls it", CALLS_GITHUB),
        ("Calls another", "integrations.get('slack', '/')"),
        # Its calls cannot be read: not named (the editor's readiness says it does not compile).
        ("Does not parse", "integrations.get('slack', '/'"),
        ("Too slow to read", slow_to_compile(MAX_SOURCE_BYTES).replace("github", "gh")),
    ):
        status, _ = call(
            clients[Role.scripter], "POST", "/scripts", {"name": name, "source": source}
        )
        assert status == 201
    status, found = call(clients[Role.admin], "GET", "/integrations/github/dependents")
    assert status == 200
    assert [script["name"] for script in found["scripts"]] == ["Calls it", "Too slow to read"]


def test_a_sandbox_that_is_not_running_is_a_503_in_words(app: Flask) -> None:
    stopped = Executor(idle_workers=1).start()
    stopped.close()
    check = sandbox_checker(lambda: stopped, app.config)
    with pytest.raises(CheckerUnavailable) as refused:
        check("result = 1")
    assert (refused.value.status, refused.value.code) == (503, "sandbox_unavailable")
    assert "try again in a minute" in str(refused.value)


class HeldChecks:
    """An executor whose checks hold their place until `done` is set: what is under test is
    how many checks a process runs at once, not the pool (tested above)."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.done = threading.Event()

    def check(self, source: str, *, limits: Any) -> SourceCheck:
        self.started.release()
        self.done.wait(30)
        return SourceCheck()


def test_a_check_past_the_checks_at_once_waits_then_is_refused_in_words(app: Flask) -> None:
    # Each check takes a sandbox worker for up to COMPILE_TIME_S (in the embedded server,
    # one the runs use): a scripter sending many slow sources at once took them all.
    app.config["COMPILE_TIME_S"] = 0.3  # also how long a check waits for a place
    held = HeldChecks()
    check = sandbox_checker(lambda: held, app.config, at_once=1)  # type: ignore[arg-type,return-value]
    first = threading.Thread(target=check, args=("result = 1",))
    first.start()
    try:
        assert held.started.acquire(timeout=10)
        with pytest.raises(CheckerBusy) as refused:
            check("result = 2")
        assert (refused.value.status, refused.value.code) == (503, "sandbox_busy")
        assert "other scripts are being checked; save it again in a moment" in str(refused.value)
    finally:
        held.done.set()
        first.join(10)
    assert check("result = 3") == SourceCheck()  # the place is free again
