"""Shared fixtures: a migrated app on a temporary SQLite database, and small factories.

The app is imported inside the fixtures, not at the top: tests/sandbox shares this file
and must run without Flask (tests/sandbox/test_boundaries.py checks it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from flask import Flask
    from sqlalchemy.orm import Session

    from app.models import Facility, Integration, User
    from app.testing import LiveServer

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _cheap_password_hashing(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "sandbox" in request.path.parts:
        return
    from app.services import people

    monkeypatch.setattr(people, "PASSWORD_HASH_METHOD", "pbkdf2:sha256:1000")


_MIGRATED: dict[str, Path] = {}


def _migrated_template() -> Path:
    """A SQLite file migrated once per test session; each app gets a copy (fast, same schema)."""
    if "path" not in _MIGRATED:
        import tempfile

        from app.migrate import alembic_config

        folder = Path(tempfile.mkdtemp(prefix="scriptbox-template-"))
        path = folder / "template.sqlite"
        from alembic import command

        command.upgrade(alembic_config(f"sqlite:///{path}"), "head")
        _MIGRATED["path"] = path
    return _MIGRATED["path"]


def make_app(tmp_path: Path, **overrides: Any) -> Flask:
    """A Scriptbox app on a fresh, migrated SQLite file under tmp_path."""
    import shutil

    from app import create_app
    from app.integrations.vault import generate_key
    from app.migrate import upgrade

    database = tmp_path / "scriptbox.sqlite"
    if "DATABASE_URL" not in overrides:
        shutil.copyfile(_migrated_template(), database)
    config = {
        "TESTING": True,
        "DATABASE_URL": f"sqlite:///{database}",
        "SECRET_KEY": "test-secret-key",
        "SECRET_KEYS": [generate_key()],
        "PUBLIC_URL": "http://127.0.0.1:5000",
        "IDLE_WORKERS": 2,
        # The tests' upstreams (the dev provider, echo servers) listen on loopback.
        "PRIVATE_NETWORK_ALLOW": "127.0.0.1/32",
    }
    config.update(overrides)
    app = create_app(config)
    app.instance_path = str(tmp_path / "instance")
    if "DATABASE_URL" in overrides:
        upgrade(app)
    return app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    """A migrated app; its sandbox executor (if started) is closed afterwards."""
    from app import db

    application = make_app(tmp_path)
    with application.app_context():
        yield application
    db.session.remove()
    application.extensions["heartbeat"].stop()
    executor = application.extensions.get("sandbox")
    if executor is not None:
        executor.close()


@pytest.fixture
def session(app: Flask) -> Session:
    """The app's scoped session."""
    from app import db

    return db.session()


def create_user(
    session: Session, *, email: str = "ada@example.com", name: str = "Ada", password: str = PASSWORD
) -> User:
    """A user with the shared test password."""
    from app.services import people

    return people.create_user(session, email=email, name=name, password=password)


def create_facility(session: Session, *, slug: str = "lab", name: str = "The Lab") -> Facility:
    """A facility."""
    from app.services import people

    return people.create_facility(session, name=name, slug=slug)


def add_member(session: Session, *, user: User, facility: Facility, role: str = "member") -> None:
    """Give user a role in facility."""
    from app.services import people

    people.set_membership(session, user=user, facility=facility, role=role)


def create_integration(
    session: Session, *, facility: Facility, key: str = "demo", **fields: Any
) -> Integration:
    """A custom integration with sensible defaults for a loopback test API."""
    from app.models import Integration

    values: dict[str, Any] = {
        "name": key.title(),
        "auth_mode": "api_key",
        "base_url": "http://127.0.0.1:1/api",
        "placements": [{"location": "header", "name": "X-API-Key", "template": "{api_key}"}],
        "credential_fields": ["api_key"],
    }
    values.update(fields)
    integration = Integration(facility_id=facility.id, key=key, **values)
    session.add(integration)
    session.flush()
    return integration


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    """A migrated app served on a loopback port."""
    from app import db
    from app.testing import LiveServer

    application = make_app(tmp_path)
    server = LiveServer(application)
    try:
        yield server
    finally:
        server.close()
        application.extensions["heartbeat"].stop()  # no sweeps over a finished test's database
        executor = application.extensions.get("sandbox")
        if executor is not None:
            executor.close()
        db.session.remove()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One headless Debian Chromium (via Playwright) for the whole session.

    Skipped when Chromium is missing, unless SCRIPTBOX_REQUIRE_BROWSER=1 (CI), then failed.
    """
    import os

    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: apt-get install chromium"
        if os.environ.get("SCRIPTBOX_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
