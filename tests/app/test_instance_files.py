"""Issue 8.19: the instance folder is 0700, its database and key files 0600.

(Logs without query strings: tests/app/web/test_serve.py covers both servers.)"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import flask
import pytest

from app import create_app, db
from app.migrate import upgrade
from tests.conftest import create_user


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which files are created world-readable unless made private."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _app_in(folder: Path, monkeypatch: pytest.MonkeyPatch) -> flask.Flask:
    """An app on the embedded defaults (no database URL or keys given) using `folder`."""
    monkeypatch.setattr(flask.Flask, "auto_find_instance_path", lambda self: str(folder))
    app = create_app({"TESTING": True, "IDLE_WORKERS": 1})
    upgrade(app)
    return app


def _write_something(app: flask.Flask) -> None:
    with app.app_context():
        create_user(db.session(), email="someone@example.com")
        db.session.commit()
        db.session.remove()


def test_a_fresh_instance_is_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask_022: None
) -> None:
    folder = tmp_path / "instance"
    app = _app_in(folder, monkeypatch)
    _write_something(app)
    database = folder / "scriptbox.sqlite"
    assert app.config["DATABASE_URL"].endswith(str(database))
    files = [database, folder / "session.key", folder / "vault.key"]
    files += [folder / "scriptbox.sqlite-wal", folder / "scriptbox.sqlite-shm"]
    assert all(path.exists() for path in files), sorted(os.listdir(folder))
    assert _mode(folder) == 0o700
    assert {path.name: _mode(path) for path in files} == {path.name: 0o600 for path in files}
    db.engine_of(app).dispose()


def test_an_older_world_readable_instance_is_made_private_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask_022: None
) -> None:
    folder = tmp_path / "instance"
    first = _app_in(folder, monkeypatch)
    _write_something(first)
    db.engine_of(first).dispose()
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)
    second = _app_in(folder, monkeypatch)
    assert _mode(folder) == 0o700
    assert {p.name: _mode(p) for p in folder.iterdir()} == {
        p.name: 0o600 for p in folder.iterdir()
    }
    db.engine_of(second).dispose()
