"""The one-machine process list of docs/deploy.md (`deploy/Procfile`) serves a run end to end.

Each Procfile line is started as honcho would start it (through the shell, with the
`SCRIPTBOX_*` environment and `PORT`), on PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from app import db
from app.integrations.vault import generate_key
from app.models import Role
from app.testing import WebClient
from tests.conftest import add_member, create_facility, create_user, make_app, stop_app
from tests.distributed.cluster import Cluster, Process
from tests.distributed.conftest import free_port, redis_url

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]
PROCFILE = Path(__file__).parents[2] / "deploy" / "Procfile"
READY = {"web": "Scriptbox on", "worker": "ready."}


def test_the_procfile_runs_a_script_through_web_and_worker(
    tmp_path: Path, postgres_url: str, redis_prefix: str
) -> None:
    vault_key = generate_key()
    app = make_app(tmp_path, DATABASE_URL=postgres_url, SECRET_KEY="procfile-key",
                   SECRET_KEYS=[vault_key])
    with app.app_context():
        session = db.session()
        facility = create_facility(session, slug="lab")
        user = create_user(session)
        add_member(session, user=user, facility=facility, role=Role.scripter)
        session.commit()
        user_id = user.id
    db.session.remove()
    cluster = Cluster(database_url=postgres_url, redis_url=redis_url(), prefix=redis_prefix,
                      secret_key="procfile-key", vault_key=vault_key)
    port = free_port()
    env = {**cluster.env, "PORT": str(port),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    lines = [line.split(":", 1) for line in PROCFILE.read_text().splitlines() if line.strip()]
    assert sorted(name for name, _ in lines) == ["web", "worker"]
    try:
        for name, command in lines:
            process = Process(name, ["bash", "-c", command.strip()], env, READY[name])
            cluster.processes.append(process)
            assert process.ready.wait(90), process.output()
        browser = WebClient(app, f"http://127.0.0.1:{port}", user_id)
        response = browser.api("POST", "/api/f/lab/runs",
                               json={"source": "print('hi')\nresult = sum(range(10))", "wait": 60})
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "succeeded"
        assert response.json()["result"] == 45
        assert response.json()["output"] == "hi\n"
    finally:
        cluster.close()
        stop_app(app)  # its sessions closed before the pool goes
