"""Shared fixtures: a migrated app on a temporary database, and small factories.

Which database: `--databases` (or SCRIPTBOX_TEST_DATABASES), a comma list of `sqlite`
(a copied, migrated file; the default) and `postgres` (a fresh, randomly named database
cloned from a migrated template on SCRIPTBOX_TEST_POSTGRES_URL, dropped after the test).
With both, every test that builds an app runs once on each, except the browser tests
(tests/e2e), which run on the first kind listed only (CI: `sqlite,postgres`, so the app
tests run on both and the slow browser tests once); `sqlite_only` marks the few that
inspect the SQLite file itself. tests/distributed picks its own databases.

The app is imported inside the fixtures, not at the top: tests/sandbox shares this file
and must run without Flask (tests/sandbox/test_boundaries.py checks it).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    import requests
    from flask import Flask
    from flask.testing import FlaskClient
    from sqlalchemy.orm import Session

    from app.models import Facility, Integration, User
    from app.testing import LiveServer

PASSWORD = "correct horse battery"
Stored = TypeVar("Stored")


@pytest.fixture(autouse=True)
def _cheap_password_hashing(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "sandbox" in request.path.parts:
        return
    from app.services import people

    monkeypatch.setattr(people, "PASSWORD_HASH_METHOD", "pbkdf2:sha256:1000")


DATABASE_KINDS = ("sqlite", "postgres")
# Only tests under these folders run once per database (the others build no app, or
# pick their own databases like tests/distributed); e2e (slow) on the first listed only.
_PER_DATABASE = {"app", "e2e"}
_FIRST_DATABASE_ONLY = {"e2e"}


def pytest_addoption(parser: pytest.Parser) -> None:
    import os

    parser.addoption(
        "--databases",
        default=os.environ.get("SCRIPTBOX_TEST_DATABASES", "sqlite"),
        help="comma list of databases the app tests run on: sqlite, postgres",
    )


def _database_kinds(config: pytest.Config) -> list[str]:
    kinds = [kind.strip() for kind in str(config.getoption("--databases")).split(",") if kind]
    unknown = set(kinds) - set(DATABASE_KINDS)
    if unknown or not kinds:
        raise pytest.UsageError(f"--databases takes {', '.join(DATABASE_KINDS)}, not {unknown}")
    return kinds


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    kinds = _database_kinds(metafunc.config)
    parts = metafunc.definition.path.relative_to(metafunc.config.rootpath).parts
    folder = parts[1] if len(parts) > 2 and parts[0] == "tests" else ""
    if folder in _FIRST_DATABASE_ONLY:
        kinds = kinds[:1]
    own_database = "postgres_url" in metafunc.fixturenames  # such a test runs once
    if kinds == ["sqlite"] or folder not in _PER_DATABASE or own_database:
        return
    if metafunc.definition.get_closest_marker("sqlite_only"):
        kinds = ["sqlite"]  # it reads the SQLite file: on SQLite even with --databases postgres
    metafunc.parametrize("database", kinds, indirect=True)


# The descriptors the session may hold at its end beyond those at its start. A fixture that
# forgets to close what it made leaves some per test; the whole suite once held more than
# select()'s 1024. After the fixtures close theirs, a directory ends within ~40 of its start.
_DESCRIPTORS_GROWTH = 512
_DESCRIPTORS_AT_START: list[int] = []


def _open_descriptors() -> int | None:
    import os

    folder = "/proc/self/fd"
    return len(os.listdir(folder)) if os.path.isdir(folder) else None


def pytest_sessionstart(session: pytest.Session) -> None:
    count = _open_descriptors()
    if count is not None:
        _DESCRIPTORS_AT_START.append(count)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    count = _open_descriptors()
    if count is None or not _DESCRIPTORS_AT_START:
        return
    grown = count - _DESCRIPTORS_AT_START[0]
    if grown > _DESCRIPTORS_GROWTH:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = (
            f"the session ends with {grown} more open file descriptors than it began with "
            f"(more than {_DESCRIPTORS_GROWTH}): a fixture or test leaves files, sockets or "
            "apps open (see stop_app)"
        )
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(message, red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_KIND: list[str] = ["sqlite"]  # the database kind of the running test (make_app reads it)
_CREATED: list[str] = []  # PostgreSQL databases the running test created
_APPS: list[Any] = []  # the apps the running test built (stopped before their database goes)


@pytest.fixture(autouse=True)
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    """The database kind this test's apps use (see the module docstring)."""
    kind = getattr(request, "param", "sqlite")
    _KIND[0] = kind
    # A wider-scoped fixture's app (made before this test began) is its fixture's to stop.
    apps, created = len(_APPS), len(_CREATED)
    yield kind
    _KIND[0] = "sqlite"
    while len(_APPS) > apps:
        stop_app(_APPS.pop())
    while len(_CREATED) > created:
        _drop_postgres(_CREATED.pop())


_MIGRATED: dict[str, Any] = {}


def _postgres_server() -> str:
    import os

    base = os.environ.get("SCRIPTBOX_TEST_POSTGRES_URL")
    if not base:
        pytest.fail("--databases postgres needs SCRIPTBOX_TEST_POSTGRES_URL")
    return base


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _fresh_postgres() -> str:
    """A new PostgreSQL database cloned from one migrated once per session (fast)."""
    import secrets

    import psycopg

    base = _postgres_server()
    if "postgres" not in _MIGRATED:
        from alembic import command

        from app.migrate import alembic_config

        template = f"scriptbox_template_{secrets.token_hex(4)}"
        with psycopg.connect(_plain(base), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{template}"')
        url = base.rsplit("/", 1)[0] + f"/{template}"
        command.upgrade(alembic_config(url), "head")
        _MIGRATED["postgres"] = template
        import atexit

        atexit.register(_drop_postgres, template)
    name = f"scriptbox_test_{secrets.token_hex(4)}"
    with psycopg.connect(_plain(base), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_MIGRATED["postgres"]}"')
    _CREATED.append(name)
    return base.rsplit("/", 1)[0] + f"/{name}"


def _drop_postgres(name: str) -> None:
    import psycopg

    with psycopg.connect(_plain(_postgres_server()), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')



def _migrated_template() -> Path:
    """A SQLite file migrated once per test session; each app gets a copy (fast, same schema)."""
    if "path" not in _MIGRATED:
        import tempfile

        from app.migrate import alembic_config

        folder = Path(tempfile.mkdtemp(prefix="scriptbox-template-"))
        template = folder / "template.sqlite"
        from alembic import command

        command.upgrade(alembic_config(f"sqlite:///{template}"), "head")
        _MIGRATED["path"] = template
    path: Path = _MIGRATED["path"]
    return path


def make_app(tmp_path: Path, **overrides: Any) -> Flask:
    """A Scriptbox app on a fresh, migrated database (SQLite file under tmp_path, or a
    PostgreSQL database when the test runs on PostgreSQL)."""
    import shutil

    from app import create_app
    from app.integrations.vault import generate_key
    from app.migrate import upgrade

    database = tmp_path / "scriptbox.sqlite"
    if "DATABASE_URL" in overrides:
        url = overrides["DATABASE_URL"]
    elif _KIND[0] == "postgres":
        url = _fresh_postgres()
    else:
        shutil.copyfile(_migrated_template(), database)
        url = f"sqlite:///{database}"
    config = {
        "TESTING": True,
        "DATABASE_URL": url,
        "SECRET_KEY": "test-secret-key",
        "SECRET_KEYS": [generate_key()],
        "PUBLIC_URL": "http://127.0.0.1:5000",
        "IDLE_WORKERS": 2,
        # The tests' upstreams (the dev provider, echo servers) listen on loopback.
        "PRIVATE_NETWORK_ALLOW": "127.0.0.1/32",
        # Tests set runs' times in the past (pages, filters, paging): a live app's beat
        # must not prune them midway. tests/app/test_retention.py sets it.
        "RETENTION_DAYS": 0,
    }
    config.update(overrides)
    app = create_app(config)
    _APPS.append(app)
    app.instance_path = str(tmp_path / "instance")
    if "DATABASE_URL" in overrides:
        upgrade(app)
    return app


def stored(app: Flask, model: type[Stored], key: Any) -> Stored:
    """The `model` row with primary key `key` as stored now, read in a session of its own
    and detached from it (its attributes stay readable)."""
    from app import db

    with db.session_factory(app)() as fresh:
        found = fresh.get(model, key)
        assert found is not None, f"no {model.__name__} {key!r}"
        fresh.expunge(found)
        return found


def stop_app(app: Flask) -> None:
    """Stop what an app started: its run threads end or park (they would otherwise write to
    a database the next test no longer has), then its beat, sandbox and connections.
    Safe to call twice."""
    import threading
    import time

    from app import db, extensions

    if app in _APPS:
        _APPS.remove(app)
    extensions.shutdown(app, timeout=_STOP_RUNS_S)
    app.extensions["heartbeat"].stop()
    executor = app.extensions.get("sandbox")
    if executor is not None:
        executor.close()
    # Scale-out (Redis) parts: the pub/sub listener's thread and connection, Celery's
    # broker connections, the Redis client's pool. An app's threads that outlive it (an
    # idle run thread, the call-log writer) keep it reachable: closed here, or never.
    listener = app.extensions.get("redis_listener")
    if listener is not None:
        listener.close()
    celery = getattr(app.extensions.get("run_queue"), "celery", None)
    if celery is not None:
        celery.close()
        from kombu import pools  # its process-wide pools keep the broker connections

        pools.reset()
    client = app.extensions.get("redis_client")
    if client is not None:
        client.close()
    # A connection checked out while the pool is disposed is never closed (its warning
    # would fail a later test): close the sessions a test left open, and let the threads
    # still going (a request the browser left in flight, a beat or a run's last write)
    # give theirs back first; closing a session while its own thread is opening a
    # connection raises in both.
    deadline = time.monotonic() + _STOP_RUNS_S
    sessions = db.session.registry.registry
    mine = app.extensions["db_scope"]
    while True:
        alive = {thread.ident for thread in threading.enumerate()} - {threading.get_ident()}
        left = [key for key in list(sessions) if key[0] == mine]
        for key in left:
            if key[1] not in alive or time.monotonic() >= deadline:
                found = sessions.pop(key, None)
                if found is not None:
                    found.close()
        if not any(key[0] == mine for key in list(sessions)):
            break
        time.sleep(0.02)
    engine = app.extensions["db_engine"]
    checked_out = getattr(engine.pool, "checkedout", lambda: 0)
    while checked_out() and time.monotonic() < deadline:
        time.sleep(0.02)  # other threads' connections: nothing to wait on but the pool
    engine.dispose()


_STOP_RUNS_S = 20.0  # a run a test left going gets this long to end at teardown


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    """A migrated app; its sandbox executor (if started) is closed afterwards."""
    from app import db

    application = make_app(tmp_path)
    with application.app_context():
        yield application
    db.session.remove()
    stop_app(application)


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


def queued_run(app: Flask, source: str = "result = 1") -> str:
    """A scripter of a new facility and their queued, non-interactive run of `source`."""
    from app import db
    from app.models import Role
    from app.services.context import MemberContext
    from app.services.scripts import create_run

    with app.app_context():
        session = db.session()
        user = create_user(session)
        facility = create_facility(session)
        add_member(session, user=user, facility=facility, role=Role.scripter)
        run = create_run(session, MemberContext(user, facility, Role.scripter), script_id=None,
                         source=source, run_input=None, interactive=False)
        session.commit()
        run_id: str = run.id
        db.session.remove()
    return run_id


def signed_in_lab(app: Flask, *, roles: Iterable[str], csrf: str) -> dict[str, FlaskClient]:
    """Facility `lab` with one user per role (`<role>@example.com`) and a test client signed
    in as each, its CSRF token `csrf`; the clients by role. Call it inside the app's context:
    it commits the test's session."""
    from app import db
    from app.testing import signed_in_session

    session = db.session()
    lab = create_facility(session, slug="lab")
    clients = {}
    for role in roles:
        user = create_user(session, email=f"{role}@example.com")
        add_member(session, user=user, facility=lab, role=role)
        session.flush()
        client = app.test_client()
        with client.session_transaction() as cookie:
            cookie.update({**signed_in_session(app, user.id), "csrf": csrf})
        clients[str(role)] = client
    session.commit()
    return clients


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


def auth_less_lab(upstream: str, *, email: str = "sam@example.com") -> Callable[[Session], int]:
    """Seeds facility lab with a scripter (its id is the answer) and an auth-less
    integration `slow` to `upstream` (the slow APIs of the outage tests and benchmarks)."""

    def seed(session: Session) -> int:
        from app.models import Integration, Role

        facility = create_facility(session)
        user = create_user(session, email=email)
        add_member(session, user=user, facility=facility, role=Role.scripter)
        session.add(Integration(facility_id=facility.id, key="slow", name="Slow",
                                auth_mode="none", base_url=upstream, placements=[],
                                credential_fields=[]))
        session.flush()
        return user.id

    return seed


def demo_oauth_fields(
    provider_url: str, *, client_id: str, client_secret: str, **more: Any
) -> dict[str, Any]:
    """What an admin sends to add OAuth2 integration `demo` ("Demo OAuth") on the dev
    provider at `provider_url`, with `client_secret_basic`; `more` adds or overrides."""
    return {
        "key": "demo",
        "name": "Demo OAuth",
        "auth_mode": "oauth2",
        "base_url": f"{provider_url}/api",
        "authorization_url": f"{provider_url}/authorize",
        "token_url": f"{provider_url}/token",
        "token_auth_method": "client_secret_basic",
        "client_id": client_id,
        "client_secret": client_secret,
        **more,
    }


def keyed_api_fields(provider_url: str, **more: Any) -> dict[str, Any]:
    """What an admin sends to add API-key integration `keyed` ("Keyed API") on the dev
    provider's key API at `provider_url`, its key in header X-API-Key; `more` adds or
    overrides."""
    return {
        "key": "keyed",
        "name": "Keyed API",
        "auth_mode": "api_key",
        "base_url": f"{provider_url}/keyapi",
        "credential_fields": ["api_key"],
        "placements": [{"location": "header", "name": "X-API-Key", "template": "{api_key}"}],
        **more,
    }


def tenanted_oauth_fields() -> dict[str, Any]:
    """An OAuth integration whose every URL takes the member's `tenant` (a Zendesk-style
    subdomain), asked before the sign-in; its hosts are not dialled."""
    return {
        "key": "tenanted",
        "name": "Tenanted",
        "auth_mode": "oauth2",
        "base_url": "https://{tenant}.example.com/api",
        "authorization_url": "https://{tenant}.example.com/authorize",
        "token_url": "https://{tenant}.example.com/token",
        "parameters": [{"name": "tenant", "label": "Tenant", "pattern": "^[a-z]+$"}],
        "client_id": "cid",
        "client_secret": "secret",
    }


def create_closed_oauth_integration(session: Session, *, facility: Facility) -> None:
    """An OAuth2 integration `oauthy` made as an admin makes one, every endpoint on a closed
    loopback port: nothing it does may reach a network."""
    from app.services import integrations_admin

    integrations_admin.create_custom(
        session,
        facility=facility,
        fields={
            "key": "oauthy",
            "name": "OAuthy",
            "auth_mode": "oauth2",
            "base_url": "http://127.0.0.1:1/api",
            "authorization_url": "http://127.0.0.1:1/authorize",
            "token_url": "http://127.0.0.1:1/token",
            "client_id": "cid",
            "client_secret": "secret",
        },
    )


@pytest.fixture
def listener() -> Iterator[Any]:
    """A webhook receiver on loopback (tests/listener.py), closed after the test."""
    from tests.listener import Listener

    server = Listener().start()
    yield server
    server.close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    """A migrated app served on a loopback port."""
    from app import db
    from app.testing import LiveServer

    server = LiveServer(make_app(tmp_path))
    try:
        yield server
    finally:
        close_live(server)
        db.session.remove()


def close_live(server: LiveServer) -> None:
    """Stop serving, then stop the app: no runs or sweeps over a finished test's database."""
    server.close()
    stop_app(server.app)


def open_connect_link(
    browser: requests.Session, url: str, **fields: str
) -> requests.Response:
    """A person opening a connect link in `browser`: its page (a GET, which binds nothing),
    then the page's form sent with its CSRF token and `fields`. For an OAuth sign-in with
    no fields to fill, the answer is the redirect to the provider."""
    page = browser.get(url, allow_redirects=False, timeout=30)
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None, page.text
    return browser.post(
        url, data={"csrf_token": csrf.group(1), **fields}, allow_redirects=False, timeout=30
    )


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, randomly named PostgreSQL database for one test, dropped afterwards.

    Skipped unless SCRIPTBOX_TEST_POSTGRES_URL names the server (CI sets it).
    """
    import os
    import secrets

    base = os.environ.get("SCRIPTBOX_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("set SCRIPTBOX_TEST_POSTGRES_URL to run against PostgreSQL")
    import psycopg

    name = f"scriptbox_test_{secrets.token_hex(4)}"
    plain = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield base.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@contextlib.contextmanager
def database_cut(database_url: str) -> Iterator[None]:
    """The PostgreSQL database of `database_url` out of reach while inside, as in a
    restart or a failover: its open connections are ended and new ones refused."""
    import psycopg

    server, name = database_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


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
