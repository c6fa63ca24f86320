"""What a real `scriptbox serve` writes to its log holds no bearer secret from a URL (DESIGN
§6: logs hold no query values, secrets are never written to logs): a connect link's token
is in its path, as a webhook trigger's is, and the access log says /connect/… instead."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from app import db
from app.models import Role
from app.testing import WebClient
from tests.app.test_restart import Server
from tests.conftest import add_member, create_facility, create_integration, create_user, make_app

PORT = 5083  # this file's own port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`scriptbox serve` on a database with a member of `lab` and an API-key integration."""
    app = make_app(tmp_path)
    with app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        user = create_user(session, email="mia@example.com")
        add_member(session, user=user, facility=lab, role=Role.member)
        create_integration(session, facility=lab, key="keyed", base_url="http://127.0.0.1:1/api")
        session.commit()
        user_id = user.id
    server = Server(dict(app.config), PORT)
    try:
        yield {"app": app, "server": server, "user_id": user_id}
    finally:
        server.kill()


def test_the_access_log_names_a_connect_link_without_its_token(served: dict[str, Any]) -> None:
    server: Server = served["server"]
    client = WebClient(served["app"], server.url, served["user_id"])
    made = client.api("POST", "/api/f/lab/connect-links", json={"integration": "keyed"})
    assert made.status_code == 201, made.text
    url = made.json()["url"]
    token = url.rsplit("/", 1)[1]
    opened = requests.get(f"{server.url}/connect/{token}", timeout=10)
    assert opened.status_code == 200
    deadline = time.monotonic() + 30
    while not any('"GET /connect/' in line for line in server.lines):
        assert time.monotonic() < deadline, server.lines  # the access line is written
        time.sleep(0.05)
    logged = "".join(server.lines)
    assert '"GET /connect/… HTTP/1.1" 200' in logged
    assert token not in logged and token[4:] not in logged
