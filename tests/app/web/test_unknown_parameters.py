"""A query parameter an API operation does not take is a 400 naming it and the ones it
takes: `?statuss=failed` (a typo) listed every run as if it had filtered them."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import db
from app.models import Role, Run
from app.testing import signed_in_session
from app.web.openapi import accepted_parameters
from tests.conftest import add_member, create_facility, create_user

NOT_OPERATIONS = {"/api/openapi.json", "/api/docs"}
CSRF = "c"


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Ada, admin of `lab`, signed in; one failed and one succeeded run of hers."""
    session = db.session()
    lab = create_facility(session, slug="lab")
    ada = create_user(session, email="ada@example.com")
    add_member(session, user=ada, facility=lab, role=Role.admin)
    for status in ("failed", "succeeded"):
        session.add(Run(facility_id=lab.id, user_id=ada.id, source="x = 1", status=status))
    session.commit()
    http = app.test_client()
    with http.session_transaction() as cookie:
        cookie.update({**signed_in_session(app, ada.id), "csrf": CSRF})
    return http


def test_a_misspelt_filter_is_a_400_naming_it_and_the_ones_taken(client: FlaskClient) -> None:
    answer = client.get("/api/f/lab/runs?statuss=failed")
    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    assert error["code"] == "invalid_input"
    assert error["field"] == "statuss"
    assert error["message"] == (
        "Unknown query parameter `statuss`: this list takes script_id, status, trigger,"
        " schedule_id, webhook_trigger_id, user_id, since, until, tz, limit, cursor."
    )
    assert error["unknown"] == ["statuss"]
    assert "status" in error["accepted"]
    # Spelt right, it filters.
    assert [r["status"] for r in client.get("/api/f/lab/runs?status=failed").get_json()] == [
        "failed"
    ]


def test_every_unknown_one_is_named_before_any_other_problem(client: FlaskClient) -> None:
    answer = client.get("/api/f/lab/runs?limit=0&sort=desc&order=new")
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["message"].startswith("Unknown query parameters `sort`, `order`: this list")
    assert error["unknown"] == ["sort", "order"]


@pytest.mark.parametrize(
    ("query", "name"),
    [("status=failed&status=succeeded", "status"), ("limit=1&limit=2", "limit")],
)
def test_a_parameter_given_twice_is_a_400_saying_it_takes_one_value(
    client: FlaskClient, query: str, name: str
) -> None:
    # It answered in pydantic's words for the list it got: "status: Input should be
    # 'queued', ..., 'failed', ... or 'cancelled'" (both values given among those allowed),
    # "limit: Input should be a valid integer".
    answer = client.get(f"/api/f/lab/runs?{query}")
    assert answer.status_code == 400
    assert answer.get_json()["error"] == {
        "code": "invalid_input",
        "field": name,
        "message": f"`{name}` is given 2 times: it takes one value (for several, send one "
        "request for each)",
    }
    # Once, it filters.
    assert [r["status"] for r in client.get("/api/f/lab/runs?status=failed").get_json()] == [
        "failed"
    ]


def test_an_operation_without_parameters_takes_none(client: FlaskClient) -> None:
    answer = client.get("/api/me?verbose=1")
    assert answer.status_code == 400
    assert answer.get_json()["error"]["message"] == (
        "Unknown query parameter `verbose`: this operation takes no query parameters."
    )


def test_every_api_operation_refuses_an_unknown_parameter(app: Flask, client: FlaskClient) -> None:
    """Each GET and DELETE of the API, whatever its path's values: the parameters are
    checked before the view looks anything up."""
    taken = []
    for rule in app.url_map.iter_rules():
        path = str(rule)
        if not path.startswith("/api/") or path in NOT_OPERATIONS:
            continue
        concrete = re.sub(r"<int:[a-z_]+>", "1", path)
        concrete = re.sub(r"<(?:[a-z]+:)?slug>", "lab", concrete)
        concrete = re.sub(r"<(?:[a-z]+:)?[a-z_]+>", "x", concrete)
        for method in sorted((rule.methods or set()) & {"GET", "DELETE"}):
            answer = client.open(
                f"{concrete}?bogus=1", method=method, headers={"X-CSRF-Token": CSRF}
            )
            error = (answer.get_json(silent=True) or {}).get("error", {})
            if answer.status_code != 400 or error.get("field") != "bogus":
                taken.append(f"{method} {path}: {answer.status_code} {error}")
    assert taken == []


def test_the_parameters_an_operation_takes_are_worked_out_once(client: FlaskClient) -> None:
    """Every API request checks its parameters: the walk over the query model's classes
    that names them is done once per model, not once per request."""
    client.get("/api/f/lab/runs")  # the first request may be the one that works them out
    before = accepted_parameters.cache_info()
    for query in ("", "?status=failed", "?statuss=failed"):
        client.get(f"/api/f/lab/runs{query}")
    after = accepted_parameters.cache_info()
    assert (after.misses, after.hits) == (before.misses, before.hits + 3)


def test_a_gets_cache_buster_is_ignored(client: FlaskClient) -> None:
    """jQuery's `cache: false` and many HTTP tools add `_=<time>` to a GET so no cache
    answers for the server: it was a 400 "Unknown query parameter `_`". A GET ignores it
    (the list filters, pages and links as without it)."""
    answer = client.get("/api/f/lab/runs?_=1712345678&status=failed&limit=1")
    assert answer.status_code == 200, answer.get_json()
    assert [r["status"] for r in answer.get_json()] == ["failed"]
    assert client.get("/api/me?_=1712345678").status_code == 200
    both = client.get("/api/f/lab/runs?_=1&limit=1")
    assert both.status_code == 200 and "_=" not in both.headers["Link"]
    # Beside it, an unknown parameter is still named, and `_` is not.
    answer = client.get("/api/f/lab/runs?_=1&statuss=failed")
    assert answer.status_code == 400
    assert answer.get_json()["error"]["unknown"] == ["statuss"]


def test_only_a_get_ignores_the_cache_buster(client: FlaskClient) -> None:
    """A POST, PATCH or DELETE with `_` is refused as any parameter it does not take."""
    answer = client.post("/api/f/lab/runs?_=1", json={"source": "result = 1"},
                         headers={"X-CSRF-Token": CSRF})
    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["error"]["unknown"] == ["_"]
    answer = client.delete("/api/tokens/1?_=1", headers={"X-CSRF-Token": CSRF})
    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["error"]["unknown"] == ["_"]


def test_the_document_shows_the_cache_buster_on_gets_only(client: FlaskClient) -> None:
    paths = client.get("/api/openapi.json").get_json()["paths"]
    named = {
        (method, path): [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
        for path, operations in paths.items() for method, op in operations.items()
    }
    assert named[("get", "/api/f/{slug}/runs")][-1] == "_"
    assert all(("_" in names) == (method == "get") for (method, _), names in named.items())
