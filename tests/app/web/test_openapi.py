"""Issue 12.1: the API is declared once; /api/openapi.json (3.1) is generated from the same
declarations that validate requests, and /api/docs shows it under the strict CSP.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Any, get_args

import pytest
import requests
from flask import Flask
from pydantic import BaseModel

from app import db
from app.models import Facility, Role, Run
from app.testing import LiveServer, WebClient
from app.web.openapi import model_name, spec, validates_responses
from tests.app.web.conftest import Site
from tests.conftest import add_member, create_user

# Routes under /api that are not API operations: the document and its viewer.
NOT_OPERATIONS = {"/api/openapi.json", "/api/docs"}


def _document(app: Flask) -> dict[str, Any]:
    response = app.test_client().get("/api/openapi.json")
    assert response.status_code == 200
    payload: dict[str, Any] = response.get_json()
    return payload


def test_the_document_is_openapi_3_1_and_public(app: Flask) -> None:
    document = _document(app)
    assert document["openapi"] == "3.1.0"
    assert document["components"]["securitySchemes"]["token"] == {
        "type": "http",
        "scheme": "bearer",
    }


def test_every_api_route_is_declared_with_every_method(app: Flask) -> None:
    paths = _document(app)["paths"]
    missing = []
    for rule in app.url_map.iter_rules():
        path = str(rule)
        if not path.startswith("/api/") or path in NOT_OPERATIONS:
            continue
        documented = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", path)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if method.lower() not in paths.get(documented, {}):
                missing.append(f"{method} {path}")
    assert missing == []


def test_every_operation_documents_the_one_error_shape(app: Flask) -> None:
    document = _document(app)
    wrong = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status in ("400", "401", "403", "404"):
                answer = operation["responses"].get(status, {})
                schema = answer.get("content", {}).get("application/json", {}).get("schema")
                if schema is None or not schema.get("$ref", "").startswith(
                    "#/components/schemas/ErrorBody"
                ):
                    wrong.append(f"{method} {path} {status}")
    assert wrong == []
    error = next(
        v for k, v in document["components"]["schemas"].items() if k.startswith("ErrorBody")
    )
    assert error["required"] == ["error"]


def test_bodies_are_declared_with_their_fields(app: Flask) -> None:
    document = _document(app)
    operation = document["paths"]["/api/f/{slug}/runs"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"script_id", "source", "input", "wait", "interactive"} <= set(schema["properties"])
    assert schema["properties"]["interactive"]["anyOf"][0] == {"type": "boolean"}


def test_every_list_documents_its_page_size_and_where_the_next_page_is(app: Flask) -> None:
    # A generated client learns the bounds the server holds to (1..200, a 400 past them)
    # and reads the next page's cursor from the headers the lists answer with.
    document = _document(app)
    lists = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            query = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "query"}
            if "cursor" in query:
                lists[f"{method.upper()} {path}"] = (query["limit"], operation["responses"]["200"])
    assert {
        "GET /api/f/{slug}/runs",
        "GET /api/f/{slug}/calls",
        "GET /api/f/{slug}/scripts",
        "GET /api/f/{slug}/webhooks/{endpoint_id}/deliveries",
    } <= set(lists)
    for name, (limit, answer) in lists.items():
        number = next(s for s in limit["schema"]["anyOf"] if s.get("type") == "integer")
        assert (number["minimum"], number["maximum"], limit["schema"]["default"]) == (1, 200, 50), (
            name
        )
        assert set(answer["headers"]) == {"Next-Cursor", "Link"}, name
    # The schedules' list is whole (at most 10): no cursor, and no such headers.
    schedules = document["paths"]["/api/f/{slug}/scripts/{script_id}/schedules"]["get"]
    assert "headers" not in schedules["responses"]["200"]


def test_the_readme_names_every_list_that_takes_no_limit(app: Flask) -> None:
    # The README said "Every list takes `limit`", and a client paging every list alike got
    # a 400 from a script's triggers and schedules, which come whole: it names them now.
    document = _document(app)
    schemas = document["components"]["schemas"]
    whole = set()
    for path, operations in document["paths"].items():
        if "get" not in operations:
            continue
        query = {p["name"] for p in operations["get"].get("parameters", []) if p["in"] == "query"}
        content = operations["get"]["responses"]["200"].get("content", {})
        schema = content.get("application/json", {}).get("schema", {})
        if "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
        if schema.get("type") == "array" and "limit" not in query:
            whole.add(path)
    assert whole == {
        "/api/f/{slug}/scripts/{script_id}/triggers",
        "/api/f/{slug}/scripts/{script_id}/schedules",
    }
    readme = " ".join((Path(__file__).resolve().parents[3] / "README.md").read_text().split())
    promise = "Every list takes `limit` from 1 to 200 (default 50)"
    assert promise in readme
    after = readme.split(promise, 1)[1][:400]
    assert "take no `limit` or `cursor`" in after
    for path in whole:
        assert f"`GET .../scripts/<id>/{path.rsplit('/', 1)[1]}`" in after, path


def test_the_server_side_errors_operations_answer_are_documented(app: Flask) -> None:
    # Any operation answers 503 `database_unavailable` (with Retry-After) while the database
    # is out of reach, a disconnect the provider refused 502 `revocation_failed`, a code or
    # client refused at the provider 502 `provider_error`: none was in the document, so a
    # client generated from it took them for answers the API never gives.
    document = _document(app)
    ref = "#/components/schemas/ErrorBody"
    undocumented = [
        f"{method} {path}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if operation["responses"].get("503", {}).get("content", {}).get("application/json", {})
        .get("schema", {}).get("$ref") != ref
    ]
    assert undocumented == []
    provider = {
        ("post", "/api/f/{slug}/integrations/{key}/master"): "provider_error",
        ("post", "/api/f/{slug}/integrations/{key}/accounts"): "provider_error",
        ("post", "/api/f/{slug}/integrations/{key}/accounts/code"): "provider_error",
        ("delete", "/api/f/{slug}/integrations/{key}/master"): "revocation_failed",
        ("delete", "/api/f/{slug}/accounts/{account_id}"): "revocation_failed",
    }
    for (method, path), code in provider.items():
        answer = document["paths"][path][method]["responses"]["502"]
        assert answer["content"]["application/json"]["schema"]["$ref"] == ref
        assert f"`{code}`" in answer["description"], (method, path)


def test_a_wrong_type_is_a_400_naming_it_and_no_body_is_an_empty_object(
    live: LiveServer,
) -> None:
    with live.app.app_context():
        session = db.session()
        lab = Facility(name="The Lab", slug="lab")
        session.add(lab)
        session.flush()
        user = create_user(session, email="ada@example.com")
        add_member(session, user=user, facility=lab, role=Role.scripter)
        session.commit()
        user_id = user.id
    client = WebClient(live.app, live.url, user_id)
    wrong = client.api("POST", "/api/f/lab/scripts", json={"name": "S", "published": "yes"})
    assert wrong.status_code == 400
    assert wrong.json()["error"]["field"] == "published"
    assert wrong.json()["error"]["code"] == "invalid_input"
    # No body at all (curl -X POST) reads as {}: the defaults apply.
    token = client.api("POST", "/api/tokens")
    assert token.status_code == 201
    assert token.json()["name"] == "API token"
    assert token.json()["token"].startswith(token.json()["prefix"])
    # A name longer than the list keeps is refused, not cut short.
    long = client.api("POST", "/api/tokens", json={"name": "n" * 121})
    assert (long.status_code, long.json()["error"]["field"]) == (400, "name")


@pytest.mark.browser
def test_the_reference_page_shows_the_operations_under_the_csp(
    live: LiveServer, browser: Any
) -> None:
    page = browser.new_page()
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text))
    try:
        page.goto(f"{live.url}/api/docs")
        page.wait_for_selector(".opblock")
        # Swagger UI breaks long paths with zero-width spaces; compare without them.
        paths = [
            p.replace("\u200b", "") for p in page.locator(".opblock-summary-path").all_inner_texts()
        ]
        assert "/api/f/{slug}/runs" in paths
        assert len(paths) == sum(len(v) for v in _document(live.app)["paths"].values())
        csp = requests.get(f"{live.url}/api/docs", timeout=10).headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1]
        assert [v for v in violations if "Content Security Policy" in v] == []
    finally:
        page.close()


@pytest.mark.parametrize("validate", [True, False])
def test_answers_are_checked_against_their_models_where_the_app_asks(
    site: Site, monkeypatch: pytest.MonkeyPatch, validate: bool
) -> None:
    """VALIDATE_RESPONSES on: an answer that differs from its model is a 500 (a bug seen
    at once); off, as in production, it goes out as it is."""
    site.live.app.config["VALIDATE_RESPONSES"] = validate
    started = site.ada.api("POST", "/api/f/lab/runs", json={"source": "result = 1", "wait": 30})
    run_id = started.json()["id"]
    monkeypatch.setattr(
        Run, "to_dict", lambda run: {"id": run.id, "user_id": run.user_id, "status": 7}
    )
    answer = site.ada.api("GET", f"/api/f/lab/runs/{run_id}")
    if validate:
        assert answer.status_code == 500
    else:
        assert answer.status_code == 200
        runner = {"id": site.ada_id, "name": "Ada"}  # the view adds who started it
        assert answer.json() == {  # and the prompt it waits for (none)
            "id": run_id,
            "user_id": site.ada_id,
            "status": 7,
            "user": runner,
            "prompt": None,
        }


def test_answers_are_checked_under_tests_and_debug_only_by_default() -> None:
    app = Flask("probe")
    app.config["VALIDATE_RESPONSES"] = None
    assert not validates_responses(app)
    app.debug = True
    assert validates_responses(app)
    app.debug, app.testing = False, True
    assert validates_responses(app)
    app.config["VALIDATE_RESPONSES"] = False
    assert not validates_responses(app)


def test_a_run_answer_sends_only_fields_its_model_declares(site: Site) -> None:
    """Fields the answer carried beyond RunOut (version, user_id, started_at, the error's
    trace) were sent but absent from the document."""
    failing = "def inner():\n    return 1 / 0\n\ninner()\n"
    run = site.ada.api("POST", "/api/f/lab/runs", json={"source": failing, "wait": 30}).json()
    assert run["status"] == "failed" and run["error"]["trace"]
    schemas = site.ada.api("GET", "/api/openapi.json").json()["components"]["schemas"]

    def properties(model: str) -> set[str]:
        return set(schemas[model]["properties"])

    assert set(run) == properties("RunOut")
    assert set(run["error"]) == properties("RunError")
    assert set(run["error"]["trace"][0]) == properties("TraceFrame")


def test_a_trace_stored_before_repeats_were_folded_reads_in_the_documented_shape(
    site: Site,
) -> None:
    """A run stored with 20 identical frames and no `repeated` / `omitted_after` answers
    with one folded frame and both fields, as the API document declares them."""
    failing = "def walk(n):\n    return walk(n + 1)\n\nwalk(0)\n"
    started = site.ada.api("POST", "/api/f/lab/runs", json={"source": failing, "wait": 30})
    run_id = started.json()["id"]
    with site.live.app.app_context():
        stored = db.session.get(Run, run_id)
        assert stored is not None
        stored.error_trace = [{"line": 2, "name": "walk"}] * 20
        db.session.commit()
        db.session.remove()
    run = site.ada.api("GET", f"/api/f/lab/runs/{run_id}").json()
    assert run["error"]["trace"] == [
        {"line": 2, "name": "walk", "repeated": 19, "omitted_after": 0}
    ]


def test_schemas_have_their_models_plain_names_and_no_two_models_share_one(app: Flask) -> None:
    # spectree's default named them "RunOut.04f4921", "RootModel[list[RunOut]].e331601"
    # and repeated each nested model under every parent ("RunOut.04f4921.RunError"): a
    # client generator made its types' names of those.
    names = set(_document(app)["components"]["schemas"])
    assert {"RunOut", "RunOutList", "RunError", "ErrorBody", "ErrorDetail"} <= names
    assert [name for name in names if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name)] == []
    # Each name is one component: two classes of one name would silently share it.
    seen: dict[str, Any] = {}
    walked: set[Any] = set()
    shared: list[str] = []

    def walk(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel | Enum):
            name = (
                model_name(annotation) if issubclass(annotation, BaseModel) else annotation.__name__
            )
            known = seen.setdefault(name, annotation)
            if known is not annotation:
                shared.append(f"{name}: {known.__module__} and {annotation.__module__}")
            elif annotation not in walked and issubclass(annotation, BaseModel):
                walked.add(annotation)
                for field in annotation.model_fields.values():
                    walk(field.annotation)
        for inner in get_args(annotation):
            walk(inner)

    for model in spec.classes.values():
        walk(model)
    assert shared == []
    assert names <= set(seen)  # every component is one of the models walked


def test_only_starting_a_run_documents_the_410_of_a_deleted_runs_idempotency_key(
    app: Flask,
) -> None:
    # POST /runs' text promised the 410 (app.errors.IdempotencyKeyRunDeleted); a generated
    # client learns the answers it may get from the responses, not from the text. A rerun
    # takes the key too, and its body: `wait` and `interactive`, as POST /runs.
    document = _document(app)
    gone = {
        f"{method} {path}": operation["responses"]["410"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "410" in operation["responses"]
    }
    starts = ["post /api/f/{slug}/runs", "post /api/f/{slug}/runs/{run_id}/rerun"]
    assert sorted(gone) == starts
    for start in starts:
        answer = gone[start]
        assert answer["content"]["application/json"]["schema"]["$ref"].startswith(
            "#/components/schemas/ErrorBody"
        )
        assert "new key" in answer["description"]
        method, path = start.split(" ")
        operation = document["paths"][path][method]
        assert "Idempotency-Key" in [p["name"] for p in operation["parameters"]]
    run, rerun = (_body_fields(document, start.split(" ")[1]) for start in starts)
    assert set(rerun) == {"wait", "interactive"}
    assert (rerun["wait"], rerun["interactive"]) == (run["wait"], run["interactive"])


def test_only_starting_a_run_declares_the_replay_marker_beside_its_location(
    app: Flask,
) -> None:
    # A client tells the run it started from one an earlier request under its
    # Idempotency-Key started by `Idempotent-Replayed`: a generated client reads it only
    # if the answers declare it, on 200 (ended) and 201 (going on) alike.
    document = _document(app)
    marked = {
        f"{method} {path} {status}": answer["headers"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for status, answer in operation["responses"].items()
        if "Idempotent-Replayed" in answer.get("headers", {})
    }
    assert sorted(marked) == [
        f"post /api/f/{{slug}}/runs{rerun} {status}"
        for rerun in ("", "/{run_id}/rerun")
        for status in ("200", "201")
    ]
    for headers in marked.values():
        assert set(headers) == {"Idempotent-Replayed", "Location"}
        assert headers["Idempotent-Replayed"]["schema"] == {"type": "string", "enum": ["true"]}
        assert "absent" in headers["Idempotent-Replayed"]["description"]
        assert headers["Location"]["schema"] == {"type": "string", "format": "uri"}


def _body_fields(document: dict[str, Any], path: str) -> dict[str, Any]:
    """The fields of the JSON body the POST at `path` takes, as the document declares."""
    body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    fields: dict[str, Any] = document["components"]["schemas"][
        body["schema"]["$ref"].rsplit("/", 1)[1]
    ]["properties"]
    return fields
