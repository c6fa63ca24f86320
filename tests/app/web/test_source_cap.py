"""The app refuses scripts over the sandbox's source cap, with the sandbox's own message."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import db
from app.models import Role, Script
from app.testing import signed_in_session
from sandbox import MAX_SOURCE_BYTES, source_size_error
from tests.conftest import add_member, create_facility, create_user

CSRF = "test-csrf-token"
HEADERS = {"X-CSRF-Token": CSRF}
# "result = 1\n" then a comment padded to the exact size; "é" makes bytes differ from chars.
HEAD = "result = 1\n# é"


def source_of(size: int) -> str:
    return HEAD + "x" * (size - len(HEAD.encode()))


@pytest.fixture
def scripter(app: Flask) -> tuple[FlaskClient, int]:
    """A scripter's client in facility `lab` and the id of one of its scripts."""
    session = db.session()
    lab = create_facility(session, slug="lab")
    user = create_user(session, email="scripter@example.com")
    add_member(session, user=user, facility=lab, role=Role.scripter)
    script = Script(facility_id=lab.id, name="S", source="result = 1")
    session.add(script)
    session.commit()
    client = app.test_client()
    with client.session_transaction() as sess:
        sess.update({**signed_in_session(app, user.id), "csrf": CSRF})
    return client, script.id


def test_a_script_at_the_cap_is_saved(scripter: tuple[FlaskClient, int]) -> None:
    client, script_id = scripter
    source = source_of(MAX_SOURCE_BYTES)
    assert len(source.encode()) == MAX_SOURCE_BYTES
    response = client.patch(f"/api/f/lab/scripts/{script_id}", json={"source": source},
                            headers=HEADERS)
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("route", ["patch", "run"])
def test_a_script_over_the_cap_gets_the_sandbox_message(
    scripter: tuple[FlaskClient, int], route: str
) -> None:
    client, script_id = scripter
    source = source_of(MAX_SOURCE_BYTES + 1)
    if route == "patch":
        response = client.patch(f"/api/f/lab/scripts/{script_id}", json={"source": source},
                                headers=HEADERS)
    else:
        response = client.post("/api/f/lab/runs", json={"source": source}, headers=HEADERS)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["field"] == "source"
    assert error["message"] == source_size_error(source)
    assert f"at most {MAX_SOURCE_BYTES} bytes (256 KiB)" in error["message"]


def test_a_source_that_is_not_text_is_a_400(scripter: tuple[FlaskClient, int]) -> None:
    client, script_id = scripter
    response = client.patch(f"/api/f/lab/scripts/{script_id}", json={"source": 5},
                            headers=HEADERS)
    assert response.status_code == 400 and response.get_json()["error"]["field"] == "source"
