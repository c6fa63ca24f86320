"""Who hears a run's events over the websocket, and a live run's output kept as it grows.

Admins' pages watch every run of their facility; a member's page hears only the member's
own runs; nobody hears another facility's. Each output chunk carries its offset, and the
output printed so far reaches the run's row while the run still runs (issue 11, item 1).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import db
from app.models import Membership, Role, Run
from app.testing import LiveServer, Socket, WebClient
from tests.conftest import add_member, create_facility, create_user, make_app

PRINTS = 'print("one")\nprint("two", input["n"])\nresult = input["n"]\n'
# Prints, then runs until it is stopped (nothing in it waits on a clock).
PRINTS_THEN_SPINS = 'print("early")\nprint("ééé 🙂")\nwhile True:\n    pass\n'


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Facility lab: admin Ada, scripters Mia and Max; facility far: admin Oz."""
    app = make_app(tmp_path, HEARTBEAT_S=0.2, WS_RECHECK_S=0.2)
    live = LiveServer(app)
    with app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        far = create_facility(session, slug="far")
        people = {}
        for name, facility, role in (("ada", lab, Role.admin), ("mia", lab, Role.scripter),
                                     ("max", lab, Role.scripter), ("oz", far, Role.admin)):
            user = create_user(session, email=f"{name}@example.com")
            add_member(session, user=user, facility=facility, role=role)
            people[name] = user.id
        session.commit()
    clients = {name: WebClient(app, live.url, uid) for name, uid in people.items()}
    yield {"live": live, "ids": people, **clients}
    live.close()
    app.extensions["heartbeat"].stop()
    executor = app.extensions.get("sandbox")
    if executor is not None:
        executor.close()


def opened(client: WebClient, slug: str) -> Socket:
    socket = client.websocket(slug)
    socket.wait_for("hello")
    return socket


def start(client: WebClient, source: str, n: int = 0) -> str:
    response = client.api(
        "POST", "/api/f/lab/runs", json={"source": source, "input": {"n": n}, "interactive": True}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def about(socket: Socket, run_id: str) -> list[dict[str, Any]]:
    return [m for m in socket.seen if m.get("run_id") == run_id]


def test_an_admin_hears_every_run_of_the_facility_and_members_only_their_own(
    world: dict[str, Any],
) -> None:
    ada, mia, max_, oz = (opened(world[n], "lab" if n != "oz" else "far")
                          for n in ("ada", "mia", "max", "oz"))
    mias = start(world["mia"], PRINTS, n=7)

    finished = ada.wait_for("run.finished", run_id=mias)
    assert finished["run"]["status"] == "succeeded" and finished["run"]["user_id"] == world[
        "ids"]["mia"]
    mia.wait_for("run.finished", run_id=mias)
    ada_heard = [*about(ada, mias), finished]
    assert [m["data"] for m in ada_heard if m["type"] == "run.output"] == ["one\n", "two 7\n"]
    assert {"type": "run.status", "run_id": mias, "status": "running"} in ada_heard

    # Canaries: a later run of Max's and of Oz's own facility reach their pages, so anything
    # about Mia's run would have arrived before them.
    maxs = start(world["max"], PRINTS, n=1)
    max_.wait_for("run.finished", run_id=maxs)
    assert about(max_, mias) == []
    ozs = world["oz"].api("POST", "/api/f/far/runs", json={"source": PRINTS, "input": {"n": 2}})
    assert ozs.status_code == 201, ozs.text
    oz.wait_for("run.finished", run_id=ozs.json()["id"])
    assert about(oz, mias) == [] and about(oz, maxs) == []
    ada.wait_for("run.finished", run_id=maxs)  # and the admin heard Max's run as well
    assert about(ada, ozs.json()["id"]) == []  # but not another facility's
    for socket in (ada, mia, max_, oz):
        socket.close()


def test_an_admins_own_run_is_heard_once(world: dict[str, Any]) -> None:
    ada = opened(world["ada"], "lab")
    second = opened(world["ada"], "lab")
    adas = start(world["ada"], PRINTS, n=3)
    for socket in (ada, second):
        socket.wait_for("run.finished", run_id=adas)
        canary = start(world["mia"], PRINTS, n=4)  # heard after everything about Ada's run
        socket.wait_for("run.finished", run_id=canary)
        heard = [m for m in about(socket, adas) if m["type"] == "run.output"]
        assert [m["data"] for m in heard] == ["one\n", "two 3\n"]
        socket.close()


def test_a_demoted_admin_stops_watching(world: dict[str, Any]) -> None:
    ada = opened(world["ada"], "lab")
    live: LiveServer = world["live"]
    with live.app.app_context():
        membership = db.session.query(Membership).filter_by(user_id=world["ids"]["ada"]).one()
        membership.role = Role.scripter
        db.session.commit()
    ended = ada.wait_for("error")
    assert (ended["code"], ended["closing"]) == ("session_ended", True)
    mias = start(world["mia"], PRINTS)
    again = opened(world["ada"], "lab")  # the reloaded page is a scripter's now
    canary = start(world["ada"], PRINTS)
    again.wait_for("run.finished", run_id=canary)
    assert about(again, mias) == [] and about(ada, mias) == []
    again.close()


def test_a_running_runs_output_is_stored_and_numbered(world: dict[str, Any]) -> None:
    mia = opened(world["mia"], "lab")
    run_id = start(world["mia"], PRINTS_THEN_SPINS)
    first = mia.wait_for("run.output", run_id=run_id)
    second = mia.wait_for("run.output", run_id=run_id)
    assert (first["offset"], first["data"]) == (0, "early\n")
    assert (second["offset"], second["data"]) == (6, "ééé 🙂\n")  # characters, not bytes

    live: LiveServer = world["live"]
    deadline = time.monotonic() + 30
    while True:  # stored by the heartbeat at the latest, while the run still runs
        with live.app.app_context():
            run = db.session.get(Run, run_id)
            assert run is not None
            stored, status = run.output, run.status
        if stored == "early\nééé 🙂\n":
            break
        assert time.monotonic() < deadline, f"output stored so far: {stored!r}"
        time.sleep(0.05)
    assert status == "running"
    fetched = world["mia"].api("GET", f"/api/f/lab/runs/{run_id}").json()
    assert fetched["output"] == "early\nééé 🙂\n"
    assert world["mia"].api("POST", f"/api/f/lab/runs/{run_id}/cancel").status_code == 200
    assert mia.wait_for("run.finished", run_id=run_id)["run"]["status"] == "cancelled"
    mia.close()
