"""Fixtures for the web tests: a live server with one signed-in member of `lab`, a world of
two facilities and their people, signed-in clients, an API-key protected API, every row
the database stores, what the logs say, the SQL the app runs."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import MetaData, event, func, select

from app import db
from app.devprovider import ProviderConfig, create_provider_app, serve_in_thread
from app.models import Facility, Role, Run, Script
from app.testing import LiveServer, WebClient, signed_in_session
from tests.conftest import add_member, create_facility, create_integration, create_user

API_KEY = "keyapi-key"  # the one key the `keyapi` fixture's API accepts


@pytest.fixture(scope="module")
def keyapi() -> Iterator[str]:
    """A real API-key protected API on loopback (the dev provider's), accepting API_KEY."""
    provider = create_provider_app(ProviderConfig(api_keys={API_KEY: None}))
    with serve_in_thread(provider) as server:
        yield f"{server.url}/keyapi"


@dataclass
class Site:
    """A live Scriptbox with facility `lab` and a browser of its member Ada."""

    live: LiveServer
    ada: WebClient
    ada_id: int


@pytest.fixture
def site(live: LiveServer) -> Site:
    """Facility `lab`, its scripter Ada (ada@example.com) and her browser."""
    with live.app.app_context():
        lab = create_facility(db.session(), slug="lab")
        ada = create_user(db.session())
        add_member(db.session(), user=ada, facility=lab, role=Role.scripter)
        db.session.commit()
        ada_id = ada.id
    return Site(live=live, ada=WebClient(live.app, live.url, ada_id), ada_id=ada_id)


def two_facilities(
    live: LiveServer,
    *,
    lab_roles: Mapping[str, Role],
    scripts: Callable[[Facility, Facility], dict[str, Script]],
    integrations: Iterable[str] = (),
) -> dict[str, Any]:
    """Facilities `lab` and `other`; <name>@example.com (named name.title()) of lab with
    each of `lab_roles`, and oz@example.com a scripter of other; lab's integrations of the
    keys `integrations`; the scripts `scripts(lab, other)` makes. {"live", "ids" (of the
    people and scripts by name), "clients" (a WebClient by person)}."""
    with live.app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        other = create_facility(session, slug="other", name="Other")
        people = {
            name: create_user(session, email=f"{name}@example.com", name=name.title())
            for name in (*lab_roles, "oz")
        }
        for name, role in lab_roles.items():
            add_member(session, user=people[name], facility=lab, role=role)
        add_member(session, user=people["oz"], facility=other, role=Role.scripter)
        for key in integrations:
            create_integration(session, facility=lab, key=key)
        made = scripts(lab, other)
        session.add_all(made.values())
        session.commit()
        ids = {name: user.id for name, user in people.items()}
        ids.update({name: script.id for name, script in made.items()})
    clients = {name: WebClient(live.app, live.url, ids[name]) for name in people}
    return {"live": live, "ids": ids, "clients": clients}


def call(world: dict[str, Any], who: str, method: str, path: str, **kw: Any) -> requests.Response:
    """An API request of `who`'s client in a two_facilities world."""
    client: WebClient = world["clients"][who]
    return client.api(method, path, **kw)


def run_count(world: dict[str, Any]) -> int:
    """How many runs a two_facilities world has, of any script or trigger."""
    with world["live"].app.app_context():
        return db.session().scalar(select(func.count(Run.id))) or 0


def signed_in_client(app: Flask, user_id: int) -> FlaskClient:
    """A Flask test client whose session cookie signs `user_id` in."""
    http = app.test_client()
    with http.session_transaction() as cookie:
        cookie.update(signed_in_session(app, user_id))
    return http


def stored_rows(live: LiveServer) -> Iterator[tuple[str, str]]:
    """(table name, repr of the row) for every row of every table of the app's database."""
    with live.app.app_context():
        engine = db.session().get_bind()
        tables = MetaData()
        tables.reflect(bind=engine)
        with engine.connect() as connection:
            for table in tables.tables.values():
                for row in connection.execute(table.select()):
                    yield table.name, repr(tuple(row))


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """What every logger writes (the root at DEBUG) while the test runs."""
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield written
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def statements(app: Flask) -> Iterator[list[str]]:
    """Every SQL statement the app's engine runs while the test goes on."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        seen.append(" ".join(sql.split()))

    engine = db.engine_of(app)
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)
