"""NUL characters, which PostgreSQL refuses in text: a person's input with one is a 400
naming the field; what a script prints, returns or raises with one is kept (as U+FFFD)."""

from __future__ import annotations

from typing import Any

import pytest

from app import db
from app.models import ApiToken, Role
from app.testing import LiveServer, WebClient
from tests.conftest import add_member, create_facility, create_user


@pytest.fixture
def scripter(live: LiveServer) -> WebClient:
    with live.app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        user = create_user(session, email="sam@example.com")
        add_member(session, user=user, facility=lab, role=Role.scripter)
        session.commit()
        user_id = user.id
    return WebClient(live.app, live.url, user_id)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/tokens", {"name": "t\u0000"}, "name"),
        ("/api/f/lab/scripts", {"name": "a\u0000b", "source": "result = 1"}, "name"),
        ("/api/f/lab/runs", {"source": "result = 1", "input": {"k": ["\u0000"]}}, "input"),
    ],
)
def test_input_with_a_nul_is_a_400_naming_its_field(
    scripter: WebClient, live: LiveServer, path: str, body: dict[str, Any], field: str
) -> None:
    answer = scripter.api("POST", path, json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == field
    with live.app.app_context():
        assert db.session.query(ApiToken).count() == 0


def test_a_form_field_with_a_nul_is_a_400(scripter: WebClient) -> None:
    answer = scripter.post_form("/login", {"email": "sam\u0000@example.com", "password": "x"})
    assert answer.status_code == 400
    assert "NUL" in answer.text


def test_what_a_script_prints_returns_and_raises_with_a_nul_is_kept(
    scripter: WebClient,
) -> None:
    printed = scripter.api("POST", "/api/f/lab/runs", json={
        "source": 'print("a\\x00b")\nresult = {"k": "c\\x00d"}', "wait": 30}).json()
    assert printed["status"] == "succeeded", printed
    assert printed["output"] == "a\ufffdb\n"
    assert printed["result"] == {"k": "c\ufffdd"}
    raised = scripter.api("POST", "/api/f/lab/runs", json={
        "source": 'raise ValueError("e\\x00f")', "wait": 30}).json()
    assert raised["status"] == "failed", raised
    assert "e\ufffdf" in raised["error"]["message"]


def test_a_result_with_a_lone_surrogate_or_a_nul_in_a_key_is_kept(
    scripter: WebClient,
) -> None:
    """PostgreSQL refuses a lone surrogate in JSON: the run could not be stored as it
    ended. A NUL in a dict key was kept (its value's was replaced)."""
    answer = scripter.api("POST", "/api/f/lab/runs", json={
        "source": 'print("p" + chr(0xD800))\n'
                  'result = {"a" + chr(0): 1, "b": "c" + chr(0xDC00), "l": [chr(0xD83D)]}',
        "wait": 30}).json()
    assert answer["status"] == "succeeded", answer
    assert answer["result"] == {"a\ufffd": 1, "b": "c\ufffd", "l": ["\ufffd"]}
    assert answer["output"] == "p\ufffd\n"
    stored = scripter.api("GET", f"/api/f/lab/runs/{answer['id']}").json()
    assert stored["result"] == answer["result"]
