"""Restart recovery (DESIGN §2, §4): a real `scriptbox serve` killed with SIGKILL while
runs are running, waiting for a prompt and parked; the restarted server ends the running
and waiting ones `interrupted`, cancels their prompt and never pushes it again, resumes
the parked one when its prompt is answered, and leaves no run in a non-final state."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from alembic import command

from app import db
from app.devprovider import ProviderConfig, create_provider_app, serve_in_thread
from app.lifecycle import FINAL
from app.migrate import alembic_config
from app.models import Grant, Role, Run
from app.testing import WebClient
from tests.conftest import add_member, create_facility, create_integration, create_user, make_app

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "restart-key"
SPINS = "print('spinning')\nwhile True:\n    pass\n"
NEEDS_KEY = 'print("asking")\nresp = integrations.get("keyed", "/echo")\nresult = resp.status\n'
NEEDS_OTHER = 'print("parking")\nresult = integrations.get("other", "/echo").json()["path"]\n'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """`scriptbox serve` in its own process group (so SIGKILL takes its sandbox too)."""

    def __init__(self, config: dict[str, Any], port: int) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "SCRIPTBOX_DATABASE_URL": config["DATABASE_URL"],
            "SCRIPTBOX_SECRET_KEY": config["SECRET_KEY"],
            "SCRIPTBOX_SECRET_KEYS": ",".join(config["SECRET_KEYS"]),
            "SCRIPTBOX_HEARTBEAT_S": "0.5",
            "SCRIPTBOX_IDLE_WORKERS": "2",
            "SCRIPTBOX_PRIVATE_NETWORK_ALLOW": "127.0.0.1/32",  # the key API is on loopback
            # One live pause, then runs park at once: the test holds one of each.
            "SCRIPTBOX_PARK_AFTER_S": "60",
            "SCRIPTBOX_MAX_LIVE_PAUSED": "1",
        }
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-c", "from app.cli import main; main()"]
        self.process = subprocess.Popen(
            [*command, "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.lines: list[str] = []
        listening = threading.Event()
        threading.Thread(target=self._drain, args=(listening,), daemon=True).start()
        assert listening.wait(60), f"serve did not start: {self.lines}"
        assert requests.get(f"{self.url}/healthz", timeout=10).status_code == 200

    def _drain(self, listening: threading.Event) -> None:
        """Keep reading the server's log (a full pipe would stall it); note when it listens."""
        assert self.process.stdout is not None
        with self.process.stdout:
            for raw in self.process.stdout:
                line = raw.decode(errors="replace")
                self.lines.append(line)
                if line.startswith("Scriptbox on "):
                    listening.set()

    def kill(self) -> None:
        """SIGKILL the server and everything it started."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A database with a scripter and an API-key integration; a key API on loopback."""
    provider = create_provider_app(ProviderConfig(api_keys={API_KEY: None}))
    with serve_in_thread(provider) as keyapi:
        app = make_app(tmp_path)
        with app.app_context():
            session = db.session()
            lab = create_facility(session, slug="lab")
            user = create_user(session, email="sam@example.com")
            add_member(session, user=user, facility=lab, role=Role.scripter)
            for key in ("keyed", "other"):
                create_integration(session, facility=lab, key=key, base_url=f"{keyapi.url}/keyapi")
            session.commit()
            user_id = user.id
        servers: list[Server] = []
        yield {"app": app, "user_id": user_id, "servers": servers}
        for server in servers:
            if server.process.poll() is None:
                server.kill()


def start(client: WebClient, source: str) -> str:
    response = client.api("POST", "/api/f/lab/runs", json={"source": source, "interactive": True})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


def test_a_killed_server_leaves_no_run_behind_and_no_stale_prompt(
    setup: dict[str, Any],
) -> None:
    app, port = setup["app"], free_port()
    first = Server(app.config, port)
    setup["servers"].append(first)
    client = WebClient(app, first.url, setup["user_id"])
    page = client.websocket("lab")
    page.wait_for("hello")
    running = start(client, SPINS)
    page.wait_for("run.output", run_id=running)
    waiting = start(client, NEEDS_KEY)
    prompt = page.wait_for("grant.required", run_id=waiting)
    page.wait_for("run.status", run_id=waiting, status="waiting_for_grant")
    parked = start(client, NEEDS_OTHER)
    parked_prompt = page.wait_for("grant.required", run_id=parked)
    page.wait_for("run.status", run_id=parked, status="parked")
    first.kill()
    killed_at = time.monotonic()

    second = Server(app.config, port)
    setup["servers"].append(second)
    page = client.websocket("lab")
    page.wait_for("hello")
    for run_id in (running, waiting):
        # The page listens before we look, so an end we do not see yet is still heard.
        finished = client.api("GET", f"/api/f/lab/runs/{run_id}").json()
        if finished["status"] not in FINAL:
            finished = page.wait_for("run.finished", run_id=run_id, timeout=30)["run"]
        assert finished["status"] == "failed", second.lines
        assert finished["error"]["code"] == "interrupted"
        assert "start it again" in finished["error"]["message"]
    assert time.monotonic() - killed_at < 30

    fresh = client.websocket("lab")
    fresh.wait_for("hello")
    fresh.send({"type": "ping"})
    fresh.wait_for("pong")
    shown = [m["grant_id"] for m in fresh.seen if m["type"] == "grant.required"]
    assert shown == [parked_prompt["grant_id"]]  # the parked run's prompt, not the dead one's
    assert client.api("GET", f"/api/f/lab/runs/{parked}").json()["status"] == "parked"
    signed = client.post_form(parked_prompt["sign_in_url"], {"api_key": API_KEY})
    assert signed.status_code == 200, signed.text
    resumed = page.wait_for("run.finished", run_id=parked)["run"]
    assert resumed["status"] == "succeeded", resumed
    assert resumed["result"] == "/keyapi/echo"
    assert resumed["output"] == "parking\n"
    with app.app_context():
        db.session.expire_all()
        left = db.session.query(Run).filter(Run.status.not_in([str(s) for s in FINAL])).all()
        assert left == []
        assert db.session.get(Grant, prompt["grant_id"]).state == "cancelled"
    # The restarted server runs new work as usual.
    again = start(client, "result = 'after the restart'")
    assert page.wait_for("run.finished", run_id=again)["run"]["result"] == "after the restart"


def test_a_run_parked_before_an_upgrade_to_0021_resumes_after_it(
    setup: dict[str, Any],
) -> None:
    """The upgrade of a live installation: stopped with SIGTERM while a run waits for a
    sign-in (it parks), its database still at 0020 (before grants.takes_master), then served
    by this release, which migrates it: the prompt is shown again and the sign-in resumes
    the run from its journal."""
    app, port = setup["app"], free_port()
    first = Server(app.config, port)
    setup["servers"].append(first)
    client = WebClient(app, first.url, setup["user_id"])
    page = client.websocket("lab")
    page.wait_for("hello")
    waiting = start(client, NEEDS_OTHER)
    prompt = page.wait_for("grant.required", run_id=waiting)
    page.wait_for("run.status", run_id=waiting, status="waiting_for_grant")
    first.process.terminate()  # SIGTERM: the waiting run parks, the server exits 0
    assert first.process.wait(timeout=60) == 0, first.lines
    command.downgrade(alembic_config(app.config["DATABASE_URL"]), "0020")

    second = Server(app.config, port)  # `serve` migrates to the head before it listens
    setup["servers"].append(second)
    with app.app_context():
        grant = db.session.get(Grant, prompt["grant_id"])
        assert grant is not None and grant.state == "pending" and not grant.takes_master
    assert client.api("GET", f"/api/f/lab/runs/{waiting}").json()["status"] == "parked"
    page = client.websocket("lab")
    page.wait_for("hello")
    page.send({"type": "ping"})
    page.wait_for("pong")
    shown = [m["grant_id"] for m in page.seen if m["type"] == "grant.required"]
    assert shown == [prompt["grant_id"]]
    signed = client.post_form(prompt["sign_in_url"], {"api_key": API_KEY})
    assert signed.status_code == 200, signed.text
    resumed = page.wait_for("run.finished", run_id=waiting)["run"]
    assert resumed["status"] == "succeeded", resumed
    assert resumed["result"] == "/keyapi/echo"
    assert resumed["output"] == "parking\n"
