"""A webhook trigger may pass the whole request as the run's input (`input: "request"`):
`{"body", "headers", "query"}`, header names in lower case and without credentials or
signatures, so that a script tells GitHub's events apart. Refused in words for a script
that declares inputs, and stopped (409, said in the panel) if it comes to declare some."""

from __future__ import annotations

from typing import Any

from app.services.trigger_signatures import signature
from tests.app.web.test_webhook_triggers import call, ended, hook, triggers_of, world

__all__ = ["world"]  # the fixture, shared with the triggers' own tests


def test_a_request_trigger_passes_body_headers_and_query(world: dict[str, Any]) -> None:
    made = call(world, "sam", "POST", triggers_of(world, "echo"),
                json={"name": "GitHub", "input": "request", "signed": True})
    assert made.status_code == 201, made.text
    assert made.json()["input"] == "request"
    secret = made.json()["signing_secret"]
    body = b'{"action": "opened"}'
    answer = hook(world, made.json()["url"] + "?source=gh&x=1", data=body, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "pull_request",
        "X-Hub-Signature-256": signature(secret, body), "X-Hub-Signature": "sha1=00",
        "Authorization": "Bearer sekrit", "Cookie": "session=sekrit",
        "Proxy-Authorization": "Basic sekrit", "X-Gitlab-Token": "sekrit",
        "X-Api-Key": "sekrit", "X-Auth-Token": "sekrit", "X-Webhook-Secret": "sekrit",
        "Stripe-Signature": "t=1,v1=sekrit", "X-Shopify-Hmac-Sha256": "c2Vrcml0"})
    assert answer.status_code == 202, answer.text
    run_input = ended(world, answer.json()["run_id"])["result"]["input"]
    assert run_input["body"] == {"action": "opened"}
    assert run_input["query"] == {"source": "gh", "x": "1"}
    headers = run_input["headers"]
    assert headers["x-github-event"] == "pull_request"
    assert headers["content-type"] == "application/json"
    assert all(name == name.lower() for name in headers)
    for withheld in ("authorization", "cookie", "proxy-authorization", "x-hub-signature-256",
                     "x-hub-signature", "x-gitlab-token", "x-api-key", "x-auth-token",
                     "x-webhook-secret", "stripe-signature", "x-shopify-hmac-sha256"):
        assert withheld not in headers
    assert "sekrit" not in repr(run_input) and secret not in repr(run_input)

    plain = call(world, "sam", "POST", triggers_of(world, "echo"), json={"name": "Form"}).json()
    assert plain["input"] == "body"
    started = hook(world, plain["url"] + "?q=1", json={"a": 1})
    assert ended(world, started.json()["run_id"])["result"]["input"] == {"a": 1}


def test_a_script_with_declared_inputs_takes_no_request_trigger(world: dict[str, Any]) -> None:
    made = call(world, "sam", "POST", triggers_of(world, "echo"),
                json={"name": "GitHub", "input": "request"}).json()
    script = f"/api/f/lab/scripts/{world['ids']['echo']}"
    declared = call(world, "sam", "PATCH", script,
                    json={"inputs": [{"name": "email", "type": "text"}]})
    assert declared.status_code == 200, declared.text
    refused = call(world, "sam", "POST", triggers_of(world, "echo"),
                   json={"name": "GitHub 2", "input": "request"})
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["field"] == "input" and "this script declares inputs" in error["message"]
    # The one made before now starts nothing, and says why.
    stopped = hook(world, made["url"], json={"email": "a@example.com"})
    assert stopped.status_code == 409, stopped.text
    assert "passes the whole request" in stopped.json()["error"]["message"]
    listed = call(world, "sam", "GET", triggers_of(world, "echo")).json()
    assert "passes the whole request" in listed[0]["stopped"]
    bad = call(world, "sam", "POST", triggers_of(world, "echo"),
               json={"name": "x", "input": "headers"})
    assert bad.status_code == 400 and "input" in bad.text
