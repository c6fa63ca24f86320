"""The demo's API-key journey through the REST API: a wrong key is refused when it is typed,
and a key the provider stops accepting gives the script a clear HTTPError, not KeyError."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select, update
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from app import db
from app.demo import DEMO_API_KEY, PROVIDER_PREFIX, install_demo
from app.devprovider import provider_of
from app.models import Integration, Script, User
from app.testing import LiveServer, signed_in_session

CSRF = "test-csrf-token"
HEADERS = {"X-CSRF-Token": CSRF}


def _member(live: LiveServer) -> FlaskClient:
    client = live.app.test_client()
    with live.app.app_context():
        user_id = db.session.scalar(select(User.id).where(User.email == "member@example.com"))
        db.session.remove()
    with client.session_transaction() as sess:
        sess.update({**signed_in_session(client.application, user_id), "csrf": CSRF})
    return client


def _run(client: FlaskClient, live: LiveServer, name: str, *,
         with_input: bool = True) -> dict[str, Any]:
    """A run of the demo's script `name` with the input {"name": "Mia"} (or none at all,
    as an API client that sends none)."""
    with live.app.app_context():
        script_id = db.session.scalar(select(Script.id).where(Script.name == name))
        db.session.remove()
    body: dict[str, Any] = {"script_id": script_id, "wait": 60}
    if with_input:
        body["input"] = {"name": "Mia"}
    answer = client.post("/api/f/demo/runs", json=body, headers=HEADERS)
    assert answer.status_code in (200, 201), answer.get_json()
    run: dict[str, Any] = answer.get_json()
    return run


def test_the_demo_key_is_checked_and_a_revoked_key_is_a_clear_error(live: LiveServer) -> None:
    install_demo(live.app)
    with live.app.app_context():  # an install from before verification requests existed
        db.session.execute(update(Integration).values(verify=None))
        db.session.commit()
        db.session.remove()
    install_demo(live.app)  # adds the demo's verification request
    member = _member(live)
    connect = "/api/f/demo/integrations/demokey/accounts"
    wrong = member.post(connect, json={"fields": {"api_key": "not-the-demo-key"}}, headers=HEADERS)
    assert wrong.status_code == 400
    assert "HTTP 401" in wrong.get_json()["error"]["message"]
    right = member.post(connect, json={"fields": {"api_key": DEMO_API_KEY}}, headers=HEADERS)
    assert right.status_code == 201, right.get_json()
    assert _run(member, live, "Echo with an API key")["result"]["echo"] == {"hello": "Mia"}
    # Without any input (it raised AttributeError on None): the script's own default.
    bare = _run(member, live, "Echo with an API key", with_input=False)
    assert bare["status"] == "succeeded" and bare["result"]["echo"] == {"hello": "world"}, bare

    # The provider stops accepting the key after it was stored (revoked at the provider).
    middleware = live.app.wsgi_app
    assert isinstance(middleware, DispatcherMiddleware)
    provider_of(middleware.mounts[PROVIDER_PREFIX]).config.api_keys.clear()
    run = _run(member, live, "Echo with an API key")
    assert run["status"] == "failed"
    assert run["error"]["code"] == "http_error", run["error"]
    assert "401" in run["error"]["message"]


def test_a_key_sent_beside_fields_is_refused_naming_fields(live: LiveServer) -> None:
    # {"api_key": ...} at the top level, as a hurried API client writes it: the body's
    # unknown keys are ignored, and the answer said "enter the api key" of a key it was sent.
    install_demo(live.app)
    member = _member(live)
    connect = "/api/f/demo/integrations/demokey/accounts"
    beside = member.post(connect, json={"api_key": DEMO_API_KEY}, headers=HEADERS)
    assert beside.status_code == 400
    error = beside.get_json()["error"]
    assert error["field"] == "fields"
    assert error["message"] == 'send the credentials in fields: {"api_key": "..."}'
    assert member.get("/api/f/demo/accounts", headers=HEADERS).get_json() == []
