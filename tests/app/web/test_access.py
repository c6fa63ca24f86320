"""Every API route checks the role and the facility on the server."""

from __future__ import annotations

import html
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import db
from app.models import ApiToken, Facility, Role, Run, Script
from app.testing import signed_in_session
from tests.conftest import (
    add_member,
    create_facility,
    create_integration,
    create_user,
    tenanted_oauth_fields,
)

CSRF = "test-csrf-token"


def client_for(app: Flask, user_id: int | None) -> FlaskClient:
    client = app.test_client()
    if user_id is not None:
        with client.session_transaction() as sess:
            sess.update({**signed_in_session(app, user_id), "csrf": CSRF})
    return client


@pytest.fixture
def people(app: Flask) -> dict[str, Any]:
    """Users of every role in `lab`, an admin of `other`, and objects in `lab`."""
    session = db.session()
    lab, other = create_facility(session, slug="lab"), create_facility(session, slug="other")
    users = {}
    for role in Role:
        user = create_user(session, email=f"{role.value}@example.com")
        add_member(session, user=user, facility=lab, role=role)
        users[role.value] = user.id
    stranger = create_user(session, email="stranger@example.com")
    add_member(session, user=stranger, facility=other, role=Role.admin)
    users["stranger"] = stranger.id
    create_integration(session, facility=lab, key="keyed")
    script = Script(facility_id=lab.id, name="Published", source="result = 1", published=True)
    draft = Script(facility_id=lab.id, name="Draft", source="result = 2", published=False)
    session.add_all([script, draft])
    session.flush()
    run = Run(facility_id=lab.id, user_id=users["admin"], source="result = 1", status="succeeded")
    session.add(run)
    session.commit()
    return {"users": users, "script": script.id, "draft": draft.id, "run": run.id}


# (method, path template, minimum role); {script} {draft} {run} are filled from the fixture.
ROUTES = [
    ("GET", "/api/f/lab/scripts", Role.member),
    ("POST", "/api/f/lab/scripts", Role.scripter),
    ("GET", "/api/f/lab/scripts/{script}", Role.member),
    ("GET", "/api/f/lab/scripts/{draft}", Role.scripter),
    ("PATCH", "/api/f/lab/scripts/{script}", Role.scripter),
    ("GET", "/api/f/lab/scripts/{script}/store", Role.scripter),
    ("DELETE", "/api/f/lab/scripts/{script}/store", Role.scripter),
    ("DELETE", "/api/f/lab/scripts/{script}/store/cursor", Role.scripter),
    ("DELETE", "/api/f/lab/scripts/{draft}", Role.scripter),
    ("POST", "/api/f/lab/readiness", Role.scripter),
    ("GET", "/api/f/lab/runs", Role.member),
    ("GET", "/api/f/lab/runs/{run}", Role.admin),
    ("POST", "/api/f/lab/runs/{run}/cancel", Role.admin),
    ("GET", "/api/f/lab/runs/{run}/calls", Role.admin),
    ("GET", "/api/f/lab/members", Role.admin),
    ("POST", "/api/f/lab/members", Role.admin),
    ("PATCH", "/api/f/lab/members/{member}", Role.admin),
    ("DELETE", "/api/f/lab/members/{member}", Role.admin),
    ("GET", "/api/f/lab/invitations", Role.admin),
    ("DELETE", "/api/f/lab/invitations/1", Role.admin),
    ("POST", "/api/f/lab/members/{member}/sign-out", Role.admin),
    ("GET", "/api/f/lab/calls", Role.admin),
    ("GET", "/api/f/lab/integrations", Role.member),
    ("POST", "/api/f/lab/integrations", Role.admin),
    ("GET", "/api/f/lab/integrations/keyed", Role.member),
    ("PATCH", "/api/f/lab/integrations/keyed", Role.admin),
    ("DELETE", "/api/f/lab/integrations/keyed", Role.admin),
    ("POST", "/api/f/lab/integrations/keyed/test", Role.admin),
    ("POST", "/api/f/lab/integrations/keyed/master", Role.admin),
    ("DELETE", "/api/f/lab/integrations/keyed/master", Role.admin),
    ("POST", "/api/f/lab/integrations/keyed/accounts", Role.member),
    ("GET", "/api/f/lab/accounts", Role.member),
    ("GET", "/api/f/lab/usage", Role.admin),
]
BODY = {"name": "x", "source": "result = 1", "email": "member@example.com", "role": "member"}


def call(client: FlaskClient, method: str, path: str, *, csrf: bool = True) -> Any:
    headers = {"X-CSRF-Token": CSRF} if csrf else {}
    return client.open(path, method=method, json=BODY, headers=headers)


def _path(template: str, people: dict[str, Any]) -> str:
    return template.format(
        script=people["script"],
        draft=people["draft"],
        run=people["run"],
        member=people["users"]["member"],
    )


@pytest.mark.parametrize(("method", "template", "minimum"), ROUTES)
def test_anonymous_callers_are_refused(
    app: Flask, people: dict[str, Any], method: str, template: str, minimum: Role
) -> None:
    response = call(client_for(app, None), method, _path(template, people))
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "not_authenticated"
    # RFC 9110: a 401 names the scheme to authenticate with (it named none).
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="Scriptbox"'


@pytest.mark.parametrize(("method", "template", "minimum"), ROUTES)
def test_members_of_another_facility_are_refused(
    app: Flask, people: dict[str, Any], method: str, template: str, minimum: Role
) -> None:
    client = client_for(app, people["users"]["stranger"])
    response = call(client, method, _path(template, people))
    assert response.status_code == 404  # the facility's existence is not revealed


@pytest.mark.parametrize(("method", "template", "minimum"), ROUTES)
def test_roles_below_the_minimum_are_refused(
    app: Flask, people: dict[str, Any], method: str, template: str, minimum: Role
) -> None:
    for role in Role:
        if role.at_least(minimum):
            continue
        response = call(
            client_for(app, people["users"][role.value]), method, _path(template, people)
        )
        assert response.status_code in (403, 404), (role, response.get_data(as_text=True))


@pytest.mark.parametrize(("method", "template", "minimum"), ROUTES)
def test_the_minimum_role_gets_past_the_checks(
    app: Flask, people: dict[str, Any], method: str, template: str, minimum: Role
) -> None:
    response = call(
        client_for(app, people["users"][minimum.value]), method, _path(template, people)
    )
    # Past the access checks the request may still be invalid or need a provider; what
    # matters is that it was not refused for who asked.
    assert response.status_code not in (401, 403), response.get_data(as_text=True)
    if response.status_code == 404:
        assert "facility" not in response.get_json()["error"]["message"]


def test_state_changes_without_the_csrf_token_are_refused(
    app: Flask, people: dict[str, Any]
) -> None:
    client = client_for(app, people["users"]["admin"])
    response = call(client, "POST", "/api/f/lab/scripts", csrf=False)
    assert response.status_code == 403
    assert db.session.query(Script).count() == 2


def test_api_tokens_authenticate_without_csrf_and_are_stored_hashed(
    app: Flask, people: dict[str, Any]
) -> None:
    browser = client_for(app, people["users"]["scripter"])
    created = browser.post("/api/tokens", json={"name": "ci"}, headers={"X-CSRF-Token": CSRF})
    token = created.get_json()["token"]
    from app.models import ApiToken

    stored = db.session.query(ApiToken).one()
    assert token not in (stored.token_hash, stored.prefix) and stored.token_hash != token
    api = app.test_client()
    listed = api.get("/api/f/lab/scripts", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200
    assert {s["name"] for s in listed.get_json()} == {"Published", "Draft"}
    wrong = api.get("/api/f/lab/scripts", headers={"Authorization": "Bearer sbx_wrong"})
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"] == 'Bearer realm="Scriptbox"'


def test_a_tokens_last_use_is_kept_to_the_minute_without_a_write_per_request(
    app: Flask, people: dict[str, Any]
) -> None:
    from datetime import timedelta

    from app.models import ApiToken

    browser = client_for(app, people["users"]["scripter"])
    created = browser.post("/api/tokens", json={"name": "ci"}, headers={"X-CSRF-Token": CSRF})
    bearer = {"Authorization": f"Bearer {created.get_json()['token']}"}
    api = app.test_client()

    def last_used() -> Any:
        db.session.expire_all()
        return db.session.query(ApiToken).one().last_used_at

    assert api.get("/api/f/lab/scripts", headers=bearer).status_code == 200
    first = last_used()
    assert first is not None
    assert api.get("/api/f/lab/scripts", headers=bearer).status_code == 200
    assert last_used() == first  # within the minute: not written again
    db.session.query(ApiToken).update({"last_used_at": first - timedelta(minutes=2)})
    db.session.commit()
    assert api.get("/api/f/lab/scripts", headers=bearer).status_code == 200
    assert last_used() >= first  # a minute on: written


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source": "result = 1", "wait": "soon"}, "wait"),
        ({"script_id": "x"}, "script_id"),
        ({}, "script_id"),
        ({"source": 5}, "source"),
    ],
)
def test_malformed_run_requests_get_a_clear_error(
    app: Flask, people: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    client = client_for(app, people["users"]["scripter"])
    response = client.post("/api/f/lab/runs", json=body, headers={"X-CSRF-Token": CSRF})
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == field


@pytest.mark.parametrize("text", ["{", "[" * 5000 + "]" * 5000], ids=["cut-short", "nested"])
def test_json_that_cannot_be_read_is_a_400(
    app: Flask, people: dict[str, Any], text: str
) -> None:
    client = client_for(app, people["users"]["scripter"])
    response = client.post("/api/f/lab/runs", data=text, content_type="application/json",
                           headers={"X-CSRF-Token": CSRF})
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.get_json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/f/lab/runs", {"content_type": "text/plain", "data": '{"source": "result = 1"}'}),
        ("/api/f/lab/runs", {"data": {"source": "result = 1", "csrf_token": CSRF}}),
        ("/api/f/lab/runs", {"content_type": "multipart/form-data",
                             "data": {"source": "result = 1", "csrf_token": CSRF}}),
        # Was a 201: a token named "API token", made from a form the API never read.
        ("/api/tokens", {"data": {"name": "mine", "csrf_token": CSRF}}),
        ("/api/f/lab/scripts/1", {"method": "PATCH", "data": {"name": "x"}}),
    ],
    ids=["text", "form", "multipart", "token-form", "patch-form"],
)
def test_a_body_that_is_not_json_is_a_415_saying_how_to_send_it(
    app: Flask, people: dict[str, Any], path: str, body: dict[str, Any]
) -> None:
    client = client_for(app, people["users"]["scripter"])
    with app.app_context():
        before = db.session.query(Run).count(), db.session.query(ApiToken).count()
    body = dict(body)  # the parameter's own dict is shared by every database's run
    response = client.open(path, method=body.pop("method", "POST"),
                           headers={"X-CSRF-Token": CSRF}, **body)
    assert response.status_code == 415, response.get_data(as_text=True)[:300]
    error = response.get_json()["error"]
    assert error["code"] == "unsupported_media_type" and error["field"] == "body"
    assert "Content-Type: application/json" in error["message"]
    with app.app_context():
        assert (db.session.query(Run).count(), db.session.query(ApiToken).count()) == before


def test_a_post_without_a_body_is_read_whatever_its_content_type(
    app: Flask, people: dict[str, Any]
) -> None:
    client = client_for(app, people["users"]["admin"])
    for content_type in (None, "application/x-www-form-urlencoded", "application/json"):
        response = client.post("/api/f/lab/integrations/keyed/test", content_type=content_type,
                               headers={"X-CSRF-Token": CSRF})
        assert response.status_code == 200, (content_type, response.get_data(as_text=True))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"source": "result = 1", "input": ' + "[" * 5000 + "]" * 5000 + "}", "nested too"),
        ('{"source": "result = 1", "input": ' + "9" * 5000 + "}", "a number is too long"),
    ],
    ids=["nested", "long-number"],
)
def test_json_too_deep_or_a_number_too_long_says_which(
    app: Flask, people: dict[str, Any], text: str, words: str
) -> None:
    client = client_for(app, people["users"]["scripter"])
    response = client.post("/api/f/lab/runs", data=text, content_type="application/json",
                           headers={"X-CSRF-Token": CSRF})
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    error = response.get_json()["error"]
    assert error["field"] == "body" and words in error["message"], error


def test_an_oauth_prompt_asks_connection_parameters_before_the_provider(
    app: Flask, people: dict[str, Any]
) -> None:
    from datetime import timedelta

    from app.models import Facility, Grant
    from app.models._types import utcnow
    from app.services import integrations_admin

    lab = db.session.query(Facility).filter_by(slug="lab").one()
    integration = integrations_admin.create_custom(
        db.session(),
        facility=lab,
        fields=tenanted_oauth_fields(),
    )
    member = people["users"]["member"]
    grant = Grant(
        user_id=member,
        facility_id=lab.id,
        integration_id=integration.id,
        expires_at=utcnow() + timedelta(minutes=5),
    )
    db.session.add(grant)
    db.session.commit()
    client = client_for(app, member)
    form = client.get(f"/f/lab/grants/{grant.id}/sign-in")
    assert form.status_code == 200 and 'name="param_tenant"' in form.get_data(as_text=True)
    bad = client.get(f"/f/lab/grants/{grant.id}/sign-in?param_tenant=evil.com/x")
    assert bad.status_code == 400
    go = client.get(f"/f/lab/grants/{grant.id}/sign-in?param_tenant=acme")
    assert go.status_code == 302
    assert go.headers["Location"].startswith("https://acme.example.com/authorize?")


@pytest.mark.parametrize(("role", "shows_code"), [("member", False), ("scripter", True)])
def test_error_pages_give_members_words_and_scripters_the_code_too(
    app: Flask, people: dict[str, Any], role: str, shows_code: bool
) -> None:
    client = client_for(app, people["users"][role])
    page = client.get("/f/lab/runs/999999", headers={"Accept": "text/html"})
    assert page.status_code == 404
    text = page.get_data(as_text=True)
    heading = text.split("<h1>", 1)[1].split("</h1>", 1)[0]
    assert "run" in heading.lower()  # the words: what was not found
    assert ("Error code:" in text) is shows_code


def test_the_sign_in_page_sends_a_signed_in_browser_on(
    app: Flask, people: dict[str, Any]
) -> None:
    signed = client_for(app, people["users"]["member"])
    answer = signed.get("/login?next=/settings/tokens")
    assert (answer.status_code, answer.headers["Location"]) == (302, "/settings/tokens")
    anonymous = client_for(app, None)
    sent = anonymous.get("/settings/tokens")
    # To the sign-in page, with where it was headed and no stray "?".
    assert sent.headers["Location"] == "/login?next=/settings/tokens"


def test_a_facilitys_own_address_opens_its_scripts(app: Flask, people: dict[str, Any]) -> None:
    # /f/lab, the part every page's address starts with, was Werkzeug's "The requested
    # URL was not found on the server".
    users = people["users"]
    answer = client_for(app, users["member"]).get("/f/lab")
    assert answer.status_code == 302 and answer.headers["Location"] == "/f/lab/scripts"
    assert client_for(app, users["stranger"]).get("/f/lab").status_code == 404
    assert client_for(app, users["member"]).get("/f/nowhere").status_code == 404
    anonymous = client_for(app, None).get("/f/lab")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]


@pytest.mark.parametrize(
    ("with_integration", "starter"),
    [
        (False, 'print("Hello from Scriptbox")\nresult = {"hello": "world"}\n'),
        (True, 'resp = integrations.get("who", "/account")\nresult = resp.json()\n'),
    ],
    ids=["none", "one-with-a-who-am-i-request"],
)
def test_a_new_script_starts_with_lines_that_fit_the_facility(
    app: Flask, people: dict[str, Any], with_integration: bool, starter: str
) -> None:
    # It called integrations.get("demo", "/me") in every facility: outside the demo, a new
    # script's first run failed on an integration the facility does not have.
    session = db.session()
    if with_integration:
        other = session.scalar(select(Facility).where(Facility.slug == "other"))
        who = create_integration(session, facility=other, key="who", name="Who")
        who.whoami = {"method": "GET", "path": "/account", "field": "login"}
        session.commit()
    # The admin of `other`, which has no integration but this one (`keyed` is lab's).
    page = client_for(app, people["users"]["stranger"]).get("/f/other/editor")
    text = page.get_data(as_text=True)
    source = text.split('<textarea id="initial-source" hidden>')[1].split("</textarea>")[0]
    assert html.unescape(source) == starter


def test_a_role_refusal_says_whom_to_ask(app: Flask, people: dict[str, Any]) -> None:
    # A member who opened Management read "this needs the admin role in The Lab", no more.
    member = client_for(app, people["users"]["member"])
    for path in ("/f/lab/manage", "/api/f/lab/members"):
        refused = member.get(path)
        assert refused.status_code == 403
        assert "needs the admin role in The Lab: ask one of its admins for it" in refused.text
