"""A server whose sandbox zygote died (the kernel's OOM killer, a stray `kill`) starts a new
one: its runs go on succeeding, where before every run after the pre-forked workers failed
with `internal_error` until someone restarted the server."""

from __future__ import annotations

import os
import signal
import time
import warnings
from pathlib import Path

from app import db, sandboxes
from app.integrations.vault import generate_key
from app.models import Role
from app.testing import WebClient
from sandbox import Limits
from tests.conftest import add_member, create_facility, create_user, make_app, stop_app
from tests.distributed.cluster import Cluster, Process


def zygote_of(server: Process) -> int:
    """The sandbox zygote below the server: the first process running the zygote's code
    whose parent does not (its workers are forked from it)."""
    zygotes = {pid for pid in server.pids() if b"sandbox.zygote" in _cmdline(pid)}
    found = [pid for pid in zygotes if _parent(pid) not in zygotes]
    assert len(found) == 1, f"zygotes below the server: {found}"
    return found[0]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


def test_runs_go_on_after_the_sandbox_zygote_is_killed(tmp_path: Path) -> None:
    vault_key = generate_key()
    app = make_app(tmp_path, SECRET_KEY="zygote", SECRET_KEYS=[vault_key])
    with app.app_context():
        session = db.session()
        user = create_user(session)
        add_member(session, user=user, facility=create_facility(session), role=Role.scripter)
        session.commit()
        user_id = user.id
    db.session.remove()
    server = Cluster(database_url=app.config["DATABASE_URL"], redis_url="", prefix="",
                     secret_key="zygote", vault_key=vault_key,
                     extra={"SCRIPTBOX_EXECUTOR": "inprocess"})
    del server.env["SCRIPTBOX_REDIS_URL"]  # the embedded default: no Redis
    try:
        web, url = server.web()
        browser = WebClient(app, url, user_id)

        def run(number: int) -> dict[str, object]:
            answer = browser.api("POST", "/api/f/lab/runs",
                                 json={"source": f"result = {number}", "wait": 30})
            assert answer.status_code == 200, answer.text
            body: dict[str, object] = answer.json()
            return body

        assert run(0)["result"] == 0
        old = zygote_of(web)
        os.kill(old, signal.SIGKILL)
        time.sleep(0.5)  # the server hears the zygote's socket close
        # More runs than the one idle worker forked before its death (SCRIPTBOX_IDLE_WORKERS).
        for number in range(1, 5):
            outcome = run(number)
            assert (outcome["status"], outcome["result"]) == ("succeeded", number), outcome
        assert zygote_of(web) != old
        assert "starting a new one" in web.output()
    finally:
        server.close()
        stop_app(app)


def test_a_forked_process_starts_its_own_sandbox(tmp_path: Path) -> None:
    """A process forked after the sandbox started (gunicorn's workers, after --demo
    checked its scripts) starts its own: the inherited one's reader thread stayed in the
    parent, so the child's runs hung once the inherited idle workers were used."""
    app = make_app(tmp_path, IDLE_WORKERS=1)
    try:
        inherited = sandboxes.executor(app)
        with warnings.catch_warnings():
            # Python 3.12+ warns that forking a threaded process may deadlock; the child only
            # starts a sandbox of its own and runs in it, as a gunicorn worker does.
            warnings.simplefilter("ignore", DeprecationWarning)
            child = os.fork()
        if child == 0:
            code = 1
            try:
                own = sandboxes.executor(app)
                results = [own.run(f"result = {n}", limits=Limits(wall_time_s=5)) for n in range(3)]
                code = 0 if own is not inherited and [r.result for r in results] == [0, 1, 2] else 1
                own.close()
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert sandboxes.executor(app) is inherited and inherited.running  # the parent's own
    finally:
        stop_app(app)
