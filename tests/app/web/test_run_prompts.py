"""An API run that pauses for a sign-in (its user has no account, the embedding app hears
`grant.required`): `POST /runs` with `wait` answers at the pause, not when `wait` runs
out, and the run (POST, GET, the list) carries its `prompt`: which integration and
account it waits for, until when, and the API calls that answer it. Real webhook
listener on loopback; an API-key integration nobody connected."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from app import db, extensions
from app.models import Account, Grant, Integration
from app.services import webhooks
from app.testing import LiveServer
from tests.listener import Listener
from tests.webhook_world import call, register, webhook_world

WAIT_S = 60.0
# Longer than the test's client waits for an answer (WAIT_S): a POST held until its `wait`
# ran out would fail on the client's timeout instead of answering.
HELD_S = 300.0
NEEDS_KEYED = 'result = integrations.get("keyed", "/me").json()'


@pytest.fixture
def world(live: LiveServer, listener: Listener) -> dict[str, Any]:
    """Lab (admin Ada, member Mia, tokens) with an API-key integration "keyed" nobody
    connected, a published script that calls it, and an endpoint for `grant.required`."""
    world = webhook_world(live, keyed=True)
    made = call(
        world,
        "ada",
        "POST",
        "/api/f/lab/scripts",
        json={"name": "Keyed", "source": NEEDS_KEYED, "published": True},
    )
    assert made.status_code == 201, made.text
    world["script"] = made.json()["id"]
    world["secret"] = register(world, listener.url, ["grant.required"])["secret"]
    world["listener"] = listener
    return world


def _start(world: dict[str, Any], who: str, wait: float = HELD_S) -> requests.Response:
    return call(
        world, who, "POST", "/api/f/lab/runs", json={"script_id": world["script"], "wait": wait}
    )


def _public(world: dict[str, Any], path: str) -> str:
    return f"{world['live'].app.config['PUBLIC_URL']}{path}"


def _grant_required(world: dict[str, Any]) -> dict[str, Any]:
    got = world["listener"].next()
    assert webhooks.verify(
        world["secret"],
        got.headers["Scriptbox-Timestamp"],
        got.body,
        got.headers["Scriptbox-Signature"],
    )
    payload: dict[str, Any] = json.loads(got.body)
    assert payload["event"] == "grant.required"
    data: dict[str, Any] = payload["data"]
    return data


def _until_final(world: dict[str, Any], run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while True:
        run: dict[str, Any] = call(world, "mia", "GET", f"/api/f/lab/runs/{run_id}").json()
        if run["status"] in ("succeeded", "failed", "cancelled", "timed_out"):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.05)  # polling a condition, not a timed assertion


def test_wait_answers_at_the_pause_with_the_prompt_and_how_to_answer_it(
    world: dict[str, Any],
) -> None:
    answer = _start(world, "mia")
    # Not held for `wait` (300 s, past the client's timeout): answered at the pause.
    assert answer.status_code == 201, answer.text
    run = answer.json()
    assert run["status"] in ("waiting_for_grant", "parked")
    assert answer.headers["Location"] == _public(world, f"/api/f/lab/runs/{run['id']}")
    with world["live"].app.app_context():
        grant = db.session.scalars(select(Grant)).one()
        db.session.remove()
    assert run["prompt"] == {
        "grant_id": grant.id,
        "integration": "keyed",
        "owner": "user",
        "label": "",
        "reason": "missing",
        "expires_at": grant.expires_at.isoformat(),
        "account_note": None,
        "answer": {
            "connect_link": {
                "method": "POST",
                "url": _public(world, "/api/f/lab/connect-links"),
                "body": {"integration": "keyed", "label": "", "user_id": world["ids"]["mia"]},
            },
            "refuse": {
                "method": "POST",
                "url": _public(world, f"/api/f/lab/grants/{grant.id}/refuse"),
                "body": None,
            },
        },
    }
    # The webhook says the same prompt in the same fields (one serializer), and whose run.
    data = _grant_required(world)
    assert {key: data[key] for key in run["prompt"] if key != "answer"} == {
        key: value for key, value in run["prompt"].items() if key != "answer"
    }
    assert (data["run_id"], data["user_id"]) == (run["id"], world["ids"]["mia"])

    # The connect-link call it names works as written, for the caller.
    connect = run["prompt"]["answer"]["connect_link"]
    link = call(
        world, "mia", connect["method"], urlsplit(connect["url"]).path, json=connect["body"]
    )
    assert link.status_code == 201, link.text
    assert (link.json()["user_id"], link.json()["integration"]) == (world["ids"]["mia"], "keyed")

    # So does the refusal: the waiting call raises, and the prompt is gone from the run.
    refuse = run["prompt"]["answer"]["refuse"]
    refused = call(world, "mia", refuse["method"], urlsplit(refuse["url"]).path)
    assert refused.json() == {"grant_id": grant.id, "state": "refused"}, refused.text
    ended = _until_final(world, run["id"])
    assert (ended["status"], ended["error"]["code"], ended["error"]["reason"]) == (
        "failed",
        "no_integration_grant",
        "refused",
    )
    assert ended["prompt"] is None


def test_get_and_the_list_carry_the_prompt_and_only_its_user_may_refuse(
    world: dict[str, Any],
) -> None:
    started = _start(world, "mia", wait=0)  # answered at once; the run pauses later
    run_id = started.json()["id"]
    assert started.json()["prompt"] is None  # queued: nothing to answer yet
    mine = _grant_required(world)  # sent once the run waits for it
    assert mine["run_id"] == run_id

    own = call(world, "mia", "GET", f"/api/f/lab/runs/{run_id}").json()
    assert own["status"] in ("waiting_for_grant", "parked")
    assert own["prompt"]["grant_id"] == mine["grant_id"]
    assert own["prompt"]["answer"]["refuse"] is not None
    listed = call(world, "mia", "GET", "/api/f/lab/runs").json()
    assert [(r["id"], r["prompt"]) for r in listed] == [(run_id, own["prompt"])]

    # Ada (admin) reads Mia's run: she may make Mia's link, not refuse Mia's prompt.
    seen = call(world, "ada", "GET", f"/api/f/lab/runs/{run_id}").json()
    assert seen["prompt"]["answer"]["refuse"] is None
    assert seen["prompt"]["answer"]["connect_link"] == own["prompt"]["answer"]["connect_link"]
    assert {k: v for k, v in seen["prompt"].items() if k != "answer"} == {
        k: v for k, v in own["prompt"].items() if k != "answer"
    }
    refused = call(world, "ada", "POST", f"/api/f/lab/grants/{mine['grant_id']}/refuse")
    assert refused.status_code == 404  # what the missing `refuse` spares her

    # A run that does not pause still holds the request until it ends.
    done = call(
        world,
        "mia",
        "POST",
        "/api/f/lab/runs",
        json={"script_id": world["ids"]["script"], "wait": WAIT_S},
    )
    assert done.status_code == 200 and done.json()["result"] == 42, done.text
    assert done.json()["prompt"] is None


def test_a_prompt_for_the_default_account_says_the_users_labelled_ones_are_not_it(
    world: dict[str, Any],
) -> None:
    """Mia has Keyed only as "work": the page's prompt said why she was asked again, the
    API's run and `grant.required` (what an embedding app shows her) did not."""
    with world["live"].app.app_context():
        session = db.session()
        keyed = session.scalars(select(Integration).where(Integration.key == "keyed")).one()
        session.add(Account(facility_id=world["ids"]["lab"], integration_id=keyed.id,
                            owner_kind="user", user_id=world["ids"]["mia"], label="work"))
        session.commit()
        db.session.remove()
    run = _start(world, "mia").json()
    note = (
        "This script asks for your default Keyed account (connected without a label); "
        "your 'work' account is used only by scripts that name it."
    )
    assert (run["prompt"]["label"], run["prompt"]["account_note"]) == ("", note)
    assert _grant_required(world)["account_note"] == note
    assert extensions.run_queue(world["live"].app).cancel(run["id"])


def test_a_retried_post_of_a_paused_run_answers_at_once(world: dict[str, Any]) -> None:
    """An Idempotency-Key retry with `wait` finds its run already paused: no wait at all."""
    headers = {"Authorization": f"Bearer {world['tokens']['mia']}", "Idempotency-Key": "k-1"}
    body = {"script_id": world["script"], "wait": HELD_S}
    url = f"{world['live'].url}/api/f/lab/runs"
    first = requests.post(url, headers=headers, json=body, timeout=WAIT_S)
    assert first.status_code == 201 and first.json()["prompt"] is not None, first.text
    again = requests.post(url, headers=headers, json=body, timeout=WAIT_S)
    assert again.status_code == 201, again.text
    assert (again.json()["id"], again.json()["prompt"]) == (
        first.json()["id"],
        first.json()["prompt"],
    )
    assert extensions.run_queue(world["live"].app).cancel(first.json()["id"])


def test_the_api_document_declares_the_prompt_and_the_wait(app: Flask) -> None:
    document = app.test_client().get("/api/openapi.json").get_json()
    schemas = document["components"]["schemas"]

    def schema(name: str) -> dict[str, Any]:
        found: dict[str, Any] = schemas[name]
        return found

    assert "prompt" in schema("RunOut")["properties"]
    assert set(schema("RunPrompt")["required"]) == {
        "grant_id",
        "integration",
        "owner",
        "label",
        "reason",
        "expires_at",
        "account_note",
        "answer",
    }
    assert set(schema("PromptAnswers")["properties"]) == {"connect_link", "refuse"}
    assert "pauses for a sign-in" in schema("RunCreate")["properties"]["wait"]["description"]
    post = document["paths"]["/api/f/{slug}/runs"]["post"]
    assert "pauses for a sign-in" in post["description"]
