"""Issue 12.4: every list of the API pages by cursor. Walking a list two rows at a time
through `Next-Cursor` gives exactly the rows of one big page, in the same order, and the
last page carries no cursor; a cursor from another list is a 400 naming `cursor`."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import db
from app.models import Account, CallLog, Invitation, Role, Run, Script, ScriptVersion
from app.testing import signed_in_session
from tests.conftest import add_member, create_facility, create_integration, create_user

CSRF = "c"


@pytest.fixture
def lists(app: Flask) -> tuple[FlaskClient, dict[str, Any]]:
    """Three or more rows in every list an admin can read."""
    session = db.session()
    lab = create_facility(session, slug="lab")
    ada = create_user(session, email="ada@example.com")
    add_member(session, user=ada, facility=lab, role=Role.admin)
    for n in range(3):
        other = create_user(session, email=f"m{n}@example.com")
        add_member(session, user=other, facility=lab, role=Role.member)
        session.add(Invitation(facility_id=lab.id, email=f"i{n}@example.com", role=Role.member))
        elsewhere = create_facility(session, slug=f"o{n}", name=f"Other {n}")
        session.add(Invitation(facility_id=elsewhere.id, email="ada@example.com", role=Role.member))
        integration = create_integration(session, facility=lab, key=f"k{n}")
        session.add(
            Account(
                facility_id=lab.id,
                integration_id=integration.id,
                owner_kind="user",
                user_id=ada.id,
                label=f"l{n}",
            )
        )
    for name in ("b", "a", "c"):
        session.add(Script(facility_id=lab.id, name=name, source="result = 1"))
    session.flush()
    script = session.query(Script).filter_by(name="a").one()
    for number in (1, 2, 3):
        session.add(ScriptVersion(script_id=script.id, number=number, source=f"# {number}"))
    run = Run(facility_id=lab.id, user_id=ada.id, source="result = 1", status="succeeded")
    session.add(run)
    session.flush()
    for n in range(3):
        session.add(
            CallLog(
                run_id=run.id,
                facility_id=lab.id,
                integration_key="k0",
                method="GET",
                path=f"/{n}",
                status=200,
            )
        )
    session.commit()
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie.update({**signed_in_session(app, ada.id), "csrf": CSRF})
    return client, {"script": script.id, "run": run.id}


PATHS = [
    "/api/f/lab/scripts",
    "/api/f/lab/scripts/{script}/versions",
    "/api/f/lab/integrations",
    "/api/f/lab/accounts",
    "/api/f/lab/members",
    "/api/f/lab/invitations",
    "/api/invitations",
    "/api/f/lab/runs/{run}/calls",
    "/api/f/lab/webhooks",
]


@pytest.mark.parametrize("template", PATHS)
def test_walking_pages_gives_the_whole_list_once(
    lists: tuple[FlaskClient, dict[str, Any]], template: str
) -> None:
    client, ids = lists
    path = template.format(**ids)
    whole = client.get(f"{path}?limit=200")
    assert whole.status_code == 200, whole.get_json()
    assert "Next-Cursor" not in whole.headers
    walked: list[Any] = []
    cursor = None
    for _ in range(10):
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(f"{path}?{query}")
        assert page.status_code == 200, page.get_json()
        assert len(page.get_json()) <= 2
        walked.extend(page.get_json())
        cursor = page.headers.get("Next-Cursor")
        if cursor is None:
            break
        assert 'rel="next"' in page.headers["Link"]
    assert walked == whole.get_json()
    if template != "/api/f/lab/webhooks":  # no endpoint registered here: an empty list
        assert len(walked) >= 3


def test_a_cursor_of_another_list_is_refused(lists: tuple[FlaskClient, dict[str, Any]]) -> None:
    client, _ids = lists
    first = client.get("/api/f/lab/scripts?limit=1")
    cursor = first.headers["Next-Cursor"]  # [name, id]
    wrong = client.get(f"/api/f/lab/accounts?cursor={cursor}")  # wants [id]
    assert wrong.status_code == 400
    assert wrong.get_json()["error"]["field"] == "cursor"


@pytest.mark.parametrize("template", [*PATHS, "/api/f/lab/runs", "/api/f/lab/calls"])
def test_a_limit_out_of_range_is_a_400_naming_it_on_every_list(
    lists: tuple[FlaskClient, dict[str, Any]], template: str
) -> None:
    client, ids = lists
    path = template.format(**ids)
    for limit in ("0", "-1", "201", "100000"):
        answer = client.get(f"{path}?limit={limit}")
        assert answer.status_code == 400, (limit, answer.get_json())
        error = answer.get_json()["error"]
        assert error["field"] == "limit" and "1 to 200" in error["message"], error
    for limit in ("1", "200"):
        assert client.get(f"{path}?limit={limit}").status_code == 200, limit


def test_the_call_log_refuses_a_status_it_does_not_filter_by(
    lists: tuple[FlaskClient, dict[str, Any]],
) -> None:
    client, _ids = lists
    answer = client.get("/api/f/lab/calls?status=bogus")
    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    assert error["field"] == "status" and "'ok'" in error["message"]
    assert "'error'" in error["message"]
    assert len(client.get("/api/f/lab/calls?status=ok").get_json()) == 3
    assert client.get("/api/f/lab/calls?status=error").get_json() == []
