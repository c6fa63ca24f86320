"""Fixtures for the web tests: a live server with one signed-in member of `lab`, signed-in
clients."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import db
from app.models import Role
from app.testing import LiveServer, WebClient, signed_in_session
from tests.conftest import add_member, create_facility, create_user


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


def signed_in_client(app: Flask, user_id: int) -> FlaskClient:
    """A Flask test client whose session cookie signs `user_id` in."""
    http = app.test_client()
    with http.session_transaction() as cookie:
        cookie.update(signed_in_session(app, user_id))
    return http
