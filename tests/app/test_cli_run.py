"""`scriptbox run --facility F --user U`: members run published scripts by id, from a terminal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app import db, extensions
from app.models import Grant, Role, Run, Script
from app.services import people, webhook_endpoints
from tests.conftest import (
    add_member,
    create_facility,
    create_integration,
    create_user,
    make_app,
    queued_run,
)
from tests.listener import Listener

SCRIPTBOX = Path(sys.executable).with_name("scriptbox")


@pytest.fixture
def installation(tmp_path: Path) -> dict[str, Any]:
    """A migrated database with `lab`, a scripter, a member, a published script and a draft."""
    app = make_app(tmp_path)
    with app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab", name="The Lab")
        for email, role in (("sam@example.com", Role.scripter), ("mia@example.com", Role.member)):
            add_member(session, user=create_user(session, email=email), facility=lab, role=role)
        published = Script(
            facility_id=lab.id, name="Greet", source='result = "hi " + input', published=True
        )
        draft = Script(facility_id=lab.id, name="Draft", source="result = 2", published=False)
        session.add_all([published, draft])
        session.commit()
        ids = {"published": published.id, "draft": draft.id}
        db.session.remove()
    env = {
        **os.environ,
        "SCRIPTBOX_DATABASE_URL": app.config["DATABASE_URL"],
        "SCRIPTBOX_SECRET_KEYS": app.config["SECRET_KEYS"][0],
        "SCRIPTBOX_SECRET_KEY": "cli-test-session-key",
        "SCRIPTBOX_IDLE_WORKERS": "1",
    }
    script_file = tmp_path / "mine.py"
    script_file.write_text("result = 40 + 2\n")
    return {"env": env, "ids": ids, "file": str(script_file)}


def scriptbox(installation: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed `scriptbox` command against the test database."""
    return subprocess.run(
        [str(SCRIPTBOX), "run", "--facility", "lab", *args],
        env=installation["env"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_member_runs_a_published_script_by_id(installation: dict[str, Any]) -> None:
    script_id = str(installation["ids"]["published"])
    done = scriptbox(
        installation, "--user", "mia@example.com", "--script", script_id, "--input", '"Mia"'
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"] == "hi Mia"


def test_a_member_running_a_file_is_told_what_is_allowed(installation: dict[str, Any]) -> None:
    done = scriptbox(installation, "--user", "mia@example.com", installation["file"])
    assert done.returncode != 0
    assert "members may run the facility's published scripts by id (--script ID)" in done.stderr
    assert "running a file needs the scripter role" in done.stderr


def test_a_member_cannot_run_a_draft_and_a_scripter_runs_files(
    installation: dict[str, Any],
) -> None:
    draft = str(installation["ids"]["draft"])
    refused = scriptbox(installation, "--user", "mia@example.com", "--script", draft)
    assert refused.returncode != 0 and "no such script" in refused.stderr
    done = scriptbox(installation, "--user", "sam@example.com", installation["file"])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"] == 42
    both = scriptbox(installation, "--script", draft, installation["file"])
    assert both.returncode == 2 and "not both" in both.stderr


@pytest.mark.parametrize(
    ("args", "line"),
    [
        # Each came as the Limits ValueError's traceback.
        (("--timeout", "0"), "Invalid value for '--timeout': 0.0 is not in the range x>0."),
        (("--timeout", "-1"), "Invalid value for '--timeout': -1.0 is not in the range x>0."),
        (("--memory", "0"), "Invalid value for '--memory': 0 is not in the range x>=1."),
        (("--memory", "-5"), "Invalid value for '--memory': -5 is not in the range x>=1."),
        # The user was ignored and the file ran sandbox-only, without their integrations.
        (("--user", "sam@example.com"), "Error: --user needs --facility"),
    ],
)
def test_an_option_that_cannot_work_is_refused_naming_it(
    installation: dict[str, Any], args: tuple[str, ...], line: str
) -> None:
    done = subprocess.run(
        [str(SCRIPTBOX), "run", installation["file"], *args],
        env=installation["env"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert line in done.stderr
    assert "Traceback" not in done.stderr


def test_neither_a_file_nor_a_script_is_told_to_give_one(installation: dict[str, Any]) -> None:
    done = scriptbox(installation, "--user", "mia@example.com")
    assert done.returncode == 2
    assert done.stderr.strip().endswith("Error: give a FILE to run or --script ID"), done.stderr


def test_ctrl_c_cancels_the_run_and_prints_it(installation: dict[str, Any], tmp_path: Path) -> None:
    # Before: the command died with a traceback, and the run stayed `running` until a sweep
    # failed it `interrupted` ("the server stopped"), which nobody had.
    from sqlalchemy import create_engine, text

    forever = tmp_path / "forever.py"
    forever.write_text("n = 0\nwhile True:\n    n += 1\n")
    command = subprocess.Popen(
        [
            str(SCRIPTBOX),
            "run",
            "--facility",
            "lab",
            "--user",
            "sam@example.com",
            "--timeout",
            "60",
            str(forever),
        ],
        env=installation["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    engine = create_engine(installation["env"]["SCRIPTBOX_DATABASE_URL"])
    try:
        deadline = time.monotonic() + 60
        status = None
        while status != "running" and time.monotonic() < deadline:
            time.sleep(0.1)
            with engine.connect() as connection:
                status = connection.execute(text("SELECT status FROM runs")).scalar()
        assert status == "running"
        os.killpg(command.pid, signal.SIGINT)  # what Ctrl-C sends: to the whole group
        stdout, stderr = command.communicate(timeout=30)
        assert command.returncode == 1, stderr
        assert "cancelling the run" in stderr and "Traceback" not in stderr
        assert json.loads(stdout)["status"] == "cancelled"
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT status, error_code FROM runs")).one()
        assert tuple(stored) == ("cancelled", "cancelled")
    finally:
        if command.poll() is None:
            command.kill()
            command.communicate()
        engine.dispose()


def test_a_terminal_run_does_not_wait_for_a_grant_required_webhook(
    installation: dict[str, Any], tmp_path: Path
) -> None:
    """With an endpoint subscribed to grant.required, an API run may wait for the
    embedding app to sign its member in; a run from the terminal has nobody to answer,
    so its call still raises not_interactive at once (it parked, and the endpoint was sent
    a sign-in link for it). The run says the terminal started it."""
    env = installation["env"]  # the same database and keys as the command's
    app = make_app(
        tmp_path,
        DATABASE_URL=env["SCRIPTBOX_DATABASE_URL"],
        SECRET_KEYS=[env["SCRIPTBOX_SECRET_KEYS"]],
    )
    listener = Listener().start()
    try:
        with app.app_context():
            session = db.session()
            lab = people.facility_by_slug(session, "lab")
            sam = people.user_by_email(session, "sam@example.com")
            create_integration(session, facility=lab, key="keyed")
            webhook_endpoints.register(
                session,
                facility_id=lab.id,
                url=listener.url,
                events=["grant.required"],
                created_by=sam.id,
                vault=extensions.vault(app),
                allow=app.config["PRIVATE_NETWORK_ALLOW"],
            )
            session.commit()
            db.session.remove()
        script_file = tmp_path / "asks.py"
        script_file.write_text(
            "try:\n"
            '    integrations.get("keyed", "/me")\n'
            '    result = "answered"\n'
            "except integrations.NoIntegrationGrant as refused:\n"
            "    result = [refused.code, refused.reason]\n"
        )
        done = scriptbox(installation, "--user", "sam@example.com", str(script_file))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["result"] == ["no_integration_grant", "not_interactive"]
        with app.app_context():
            assert db.session.scalars(select(Run.trigger)).all() == ["terminal"]
            assert db.session.scalars(select(Grant)).all() == []
    finally:
        listener.close()


def test_a_ctrl_c_as_the_claim_commits_finds_the_run_to_cancel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: the terminal's run was cancellable only once its driving began, a moment after
    # the claim moved it to `running`; a Ctrl-C in between found nothing to cancel, printed
    # "Aborted!" and left the run `running` until a sweep ended it `interrupted`.
    from app.lifecycle import Lifecycle

    app = make_app(tmp_path)
    run_id = queued_run(app, "while True:\n    pass\n")
    heartbeat = extensions.heartbeat(app)
    pressed: list[bool] = []
    claim = Lifecycle.start

    def claim_then_ctrl_c(self: Lifecycle, *args: Any, **kwargs: Any) -> Any:
        claimed = claim(self, *args, **kwargs)
        pressed.append(heartbeat.cancel_local(run_id))  # what the Ctrl-C handler does
        return claimed

    monkeypatch.setattr(Lifecycle, "start", claim_then_ctrl_c)
    try:
        outcome = extensions.driver(app).claim_and_drive(run_id)
    finally:
        heartbeat.stop()
        executor = app.extensions.get("sandbox")
        if executor is not None:
            executor.close()
    assert pressed == [True]
    assert outcome is not None and outcome.status == "cancelled"
    with app.app_context():
        assert db.session.get(Run, run_id).status == "cancelled"  # type: ignore[union-attr]
