"""What an operator following docs/deploy.md sees from `scriptbox`: one line naming what to
fix, never a traceback, and never a password in what it prints."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy.engine import make_url

from app import create_app, db
from app.config import listening_url
from app.integrations.vault import Vault, generate_key
from app.migrate import Migrated, alembic_config
from tests.conftest import create_facility, create_integration, make_app

SCRIPTBOX = Path(sys.executable).with_name("scriptbox")


def init_db(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """`scriptbox init-db` with these SCRIPTBOX_ settings (a SQLite file unless one is given)."""
    return scriptbox(tmp_path, "init-db", **settings)


def scriptbox(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """`scriptbox ARGS` with these SCRIPTBOX_ settings (a SQLite file unless one is given)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SCRIPTBOX_DATABASE_URL": f"sqlite:///{tmp_path / 'scriptbox.sqlite'}",
        "SCRIPTBOX_SECRET_KEY": "cli-operator-session-key",
        "SCRIPTBOX_SECRET_KEYS": generate_key(),
        **{f"SCRIPTBOX_{key}": value for key, value in settings.items()},
    }
    return subprocess.run(
        [str(SCRIPTBOX), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port  # nothing listens once the probe closes


@pytest.mark.parametrize(
    ("settings", "line"),
    [
        # README's scale-out said SECRET_KEYS=... : Fernet's own ValueError came as a traceback.
        (
            {"SECRET_KEYS": "..."},
            "Error: SCRIPTBOX_SECRET_KEYS: key 1 is not a Fernet key",
        ),
        (
            {"SECRET_KEYS": f"{generate_key()},not-a-key"},
            "Error: SCRIPTBOX_SECRET_KEYS: key 2 is not a Fernet key",
        ),
        # deploy/scaleout.env.example's placeholder, copied as it is: sessions would be
        # signed with a key anyone can read.
        (
            {"SECRET_KEY": "change-me"},
            "Error: SCRIPTBOX_SECRET_KEY is a placeholder; make one with:",
        ),
        ({"EXECUTOR": "threads"}, "Error: SCRIPTBOX_EXECUTOR must be one of inprocess, celery"),
        (
            {"EXECUTOR": "celery"},
            "Error: SCRIPTBOX_EXECUTOR=celery needs SCRIPTBOX_REDIS_URL=redis://host:port/db",
        ),
        # The driver's ModuleNotFoundError came as a traceback.
        (
            {"DATABASE_URL": "mysql://scriptbox:secret@127.0.0.1/x"},
            "Error: SCRIPTBOX_DATABASE_URL must name SQLite or PostgreSQL (not mysql): "
            "sqlite:///path or postgresql+psycopg://",
        ),
        (
            {"DATABASE_URL": "postgresql+psycopg2://scriptbox@127.0.0.1/x"},
            "Error: SCRIPTBOX_DATABASE_URL must name SQLite or PostgreSQL (not postgresql+psy",
        ),
        (
            {"DATABASE_URL": "nosuchdb://x"},
            "Error: SCRIPTBOX_DATABASE_URL must name SQLite or PostgreSQL (not nosuchdb): ",
        ),
        (
            {"DATABASE_URL": "scriptbox.sqlite"},
            "Error: SCRIPTBOX_DATABASE_URL must name SQLite or PostgreSQL: sqlite:///path",
        ),
        (
            {"DATABASE_URL": f"postgresql+psycopg://scriptbox@127.0.0.1:{closed_port()}/x"},
            "Error: cannot use the database of SCRIPTBOX_DATABASE_URL: connection failed",
        ),
    ],
)
def test_a_setting_that_cannot_work_is_one_line_naming_it(
    tmp_path: Path, settings: dict[str, str], line: str
) -> None:
    done = init_db(tmp_path, **settings)
    assert done.returncode == 1
    assert done.stderr.startswith(line), done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_init_db_prints_the_database_without_its_password(tmp_path: Path) -> None:
    url = make_url(make_app(tmp_path).config["DATABASE_URL"])
    if url.get_backend_name() != "postgresql":
        pytest.skip("a SQLite URL has no password to hide")
    if url.password is None:
        url = url.set(password="never-printed")  # the test server trusts; it is not checked
    password = str(url.password)
    done = init_db(tmp_path, DATABASE_URL=url.render_as_string(hide_password=False))
    assert done.returncode == 0, done.stderr
    shown = url.render_as_string(hide_password=True)
    assert done.stdout.strip().startswith(f"database ready: {shown} (at 00")
    assert password not in done.stdout + done.stderr


def test_init_db_and_serve_say_which_migrations_they_ran(tmp_path: Path) -> None:
    # An operator could not tell from a deploy's log whether (and which) migrations ran.
    settings = {"SECRET_KEYS": generate_key()}
    created = init_db(tmp_path, **settings)
    assert created.returncode == 0, created.stderr
    head = created.stdout.strip().rsplit(" ", 1)[-1].rstrip(")")
    assert created.stdout.strip().endswith(f"(created at {head})")
    again = init_db(tmp_path, **settings)
    assert again.stdout.strip().endswith(f"(at {head})")
    earlier = f"{int(head) - 1:04d}"
    command.downgrade(alembic_config(f"sqlite:///{tmp_path / 'scriptbox.sqlite'}"), earlier)
    upgraded = init_db(tmp_path, **settings)
    assert upgraded.stdout.strip().endswith(f"(upgraded from {earlier} to {head})")
    # serve says it only for an upgrade: a first start's banner stays as it was.
    assert [Migrated(earlier, head).upgraded, Migrated(None, head).upgraded,
            Migrated(head, head).upgraded] == [True, False, False]


def test_serve_derives_the_public_url_only_when_none_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCRIPTBOX_DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite'}")
    monkeypatch.setenv("SCRIPTBOX_SECRET_KEYS", generate_key())
    unset = create_app()
    assert unset.config["PUBLIC_URL"] == "http://127.0.0.1:5000"
    assert unset.config["PUBLIC_URL_DERIVED"] is True
    # The default's own value, set by the operator, is theirs: `serve --host` keeps it.
    monkeypatch.setenv("SCRIPTBOX_PUBLIC_URL", "http://127.0.0.1:5000")
    assert create_app().config["PUBLIC_URL_DERIVED"] is False


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("0.0.0.0", "http://127.0.0.1:8000"),
        ("::", "http://[::1]:8000"),
        ("::1", "http://[::1]:8000"),
        ("scriptbox.internal", "http://scriptbox.internal:8000"),
    ],
)
def test_the_listening_url_is_one_a_browser_opens(host: str, url: str) -> None:
    assert listening_url(host, 8000) == url


@pytest.mark.parametrize("port", ["0", "99999"])
def test_serve_refuses_a_port_before_it_touches_the_database(tmp_path: Path, port: str) -> None:
    # 99999 migrated the database, then came as a 48-line OverflowError from bind().
    done = scriptbox(tmp_path, "serve", "--port", port)
    assert done.returncode == 2, done.stderr
    assert f"Invalid value for '--port': {port} is not in the range 1<=x<=65535." in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "scriptbox.sqlite").exists()


def test_rotate_keys_without_the_old_key_says_which_secrets_and_keeps_them(
    tmp_path: Path,
) -> None:
    old, new = generate_key(), generate_key()
    app = make_app(tmp_path)
    with app.app_context():
        session = db.session()
        lab = create_facility(session)
        create_integration(session, facility=lab, defaults_enc=Vault([old]).encrypt("k"))
        session.commit()
        db.session.remove()
    url = app.config["DATABASE_URL"]
    # It was VaultError's 30-line traceback.
    done = scriptbox(tmp_path, "rotate-keys", DATABASE_URL=url, SECRET_KEYS=new)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "Error: SCRIPTBOX_SECRET_KEYS cannot decrypt 1 stored secret (integration default "
        "credentials: 1); nothing was re-encrypted: keep the key they were written with in "
        "SCRIPTBOX_SECRET_KEYS, after the new key, until rotate-keys has run"
    )
    done = scriptbox(tmp_path, "rotate-keys", DATABASE_URL=url, SECRET_KEYS=f"{new},{old}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "re-encrypted 1 secrets under the newest key"


@pytest.mark.parametrize(
    ("settings", "line"),
    [
        ({}, "Error: this needs SCRIPTBOX_EXECUTOR=celery and SCRIPTBOX_REDIS_URL"),
        # It joined the cluster's queue and took its tasks, finding none of their runs.
        (
            {"EXECUTOR": "celery", "REDIS_URL": "redis://127.0.0.1:6379/13"},
            "Error: scriptbox worker needs the cluster's PostgreSQL: a SQLite file is one "
            "machine's",
        ),
        # It printed a traceback per forked process, then "ready".
        (
            {
                "EXECUTOR": "celery",
                "REDIS_URL": "redis://127.0.0.1:6379/13",
                "DATABASE_URL": f"postgresql+psycopg://scriptbox@127.0.0.1:{closed_port()}/x",
            },
            "Error: cannot use the database of SCRIPTBOX_DATABASE_URL: connection failed",
        ),
    ],
)
def test_worker_refuses_a_database_it_cannot_share_or_reach(
    tmp_path: Path, settings: dict[str, str], line: str
) -> None:
    done = scriptbox(tmp_path, "worker", "--concurrency", "1", **settings)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(line), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_serve_refuses_a_cluster_on_sqlite(tmp_path: Path) -> None:
    """Every web process would keep its own runs: a cluster of one-machine files."""
    done = scriptbox(tmp_path, "serve", "--port", str(closed_port()),
                     EXECUTOR="celery", REDIS_URL="redis://127.0.0.1:6379/13")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == (
        "Error: scriptbox serve with SCRIPTBOX_EXECUTOR=celery needs the cluster's PostgreSQL:"
        " a SQLite file is one machine's"), done.stderr


def test_serve_refuses_the_demo_in_the_scale_out(tmp_path: Path, postgres_url: str) -> None:
    """The demo's provider lives in its one process: workers and other web processes
    refused its calls."""
    done = scriptbox(tmp_path, "serve", "--demo", "--port", str(closed_port()),
                     EXECUTOR="celery", REDIS_URL="redis://127.0.0.1:6379/13",
                     DATABASE_URL=postgres_url)
    assert done.returncode == 2, done.stderr
    assert "--demo serves the embedded default only" in done.stderr


def test_a_command_that_does_not_migrate_says_to_run_init_db(tmp_path: Path) -> None:
    # After an upgrade, `scriptbox run --facility` against the unmigrated database died
    # with a traceback about a missing column mid-run.
    settings = {"SECRET_KEYS": generate_key()}
    empty = scriptbox(tmp_path, "create-facility", "--slug", "lab", **settings)
    assert empty.returncode == 1
    assert empty.stderr.strip() == (
        "Error: the database of SCRIPTBOX_DATABASE_URL has no schema yet: run"
        " `scriptbox init-db` to create it"
    )
    created = init_db(tmp_path, **settings)
    head = created.stdout.strip().rsplit(" ", 1)[-1].rstrip(")")
    earlier = f"{int(head) - 1:04d}"
    command.downgrade(alembic_config(f"sqlite:///{tmp_path / 'scriptbox.sqlite'}"), earlier)
    commands = [("create-facility", "--slug", "lab"), ("run", "--facility", "lab", "--script", "1")]
    for args in commands:
        behind = scriptbox(tmp_path, *args, **settings)
        assert behind.returncode == 1, args
        assert behind.stderr.strip() == (
            f"Error: the database of SCRIPTBOX_DATABASE_URL is at migration {earlier} and"
            f" this Scriptbox needs {head}: run `scriptbox init-db` to migrate it"
            " (`scriptbox serve` does too)"
        ), args
    assert init_db(tmp_path, **settings).returncode == 0
    made = scriptbox(tmp_path, "create-facility", "--slug", "lab", **settings)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "created facility lab"
