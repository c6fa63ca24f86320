"""Webhook triggers may be paused and resumed (PATCH `enabled`, as schedules): a paused
trigger's URL answers 409 trigger_paused in words naming no script nor member and starts
nothing, GitHub's ping included; a ping at a stopped trigger says why too. Each refused
call is traced on its trigger (time, status, code, count) for the API and the panel, but
nothing for an unknown token. Slack's URL verification hears its challenge back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app import db
from app.models import WebhookTrigger
from app.services.trigger_signatures import signature
from app.web.throttle import HookThrottle
from tests.app.web.conftest import run_count
from tests.app.web.test_webhook_triggers import call, hook, make, triggers_of, world

__all__ = ["world"]  # the fixture, shared with the triggers' own tests


def shown(world: dict[str, Any], trigger_id: int) -> dict[str, Any]:
    listed = call(world, "sam", "GET", triggers_of(world, "echo")).json()
    found: dict[str, Any] = next(t for t in listed if t["id"] == trigger_id)
    return found


def patch(world: dict[str, Any], who: str, trigger_id: int, body: Any) -> Any:
    return call(world, who, "PATCH", f"{triggers_of(world, 'echo')}/{trigger_id}", json=body)


def test_a_paused_trigger_starts_nothing_until_resumed(world: dict[str, Any]) -> None:
    made = make(world)
    assert (made["enabled"], made["paused_at"]) == (True, None)
    paused = patch(world, "sam", made["id"], {"enabled": False})
    assert paused.status_code == 200, paused.text
    assert paused.json()["enabled"] is False and paused.json()["paused_at"] is not None
    before = run_count(world)
    refused = hook(world, made["url"], json={"n": 1})
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "trigger_paused"
    assert error["message"].startswith("this webhook trigger is paused: it starts no run")
    # The caller is anonymous: nothing of the maker or the script.
    assert "Sam" not in refused.text and "Echo" not in refused.text
    assert run_count(world) == before
    listed = shown(world, made["id"])
    assert (listed["enabled"], listed["paused_at"]) == (False, paused.json()["paused_at"])
    again = patch(world, "sam", made["id"], {"enabled": False})  # keeps its time
    assert again.json()["paused_at"] == paused.json()["paused_at"]

    resumed = patch(world, "ada", made["id"], {"enabled": True})  # an admin may too
    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["enabled"], resumed.json()["paused_at"]) == (True, None)
    started = hook(world, made["url"], json={"n": 2})
    assert started.status_code == 202, started.text


def test_who_may_pause_a_trigger_and_what_a_patch_takes(world: dict[str, Any]) -> None:
    made = make(world)
    other = patch(world, "sue", made["id"], {"enabled": False})
    assert other.status_code == 403 and "only they or an admin may pause" in other.text
    member = patch(world, "mia", made["id"], {"enabled": False})
    assert member.status_code == 403 and "scripter role" in member.text
    for body in ({}, {"enabled": None}):
        empty = patch(world, "sam", made["id"], body)
        assert empty.status_code == 400 and empty.json()["error"]["field"] == "enabled"
    wrong = patch(world, "sam", made["id"], {"enabled": "no"})
    assert wrong.status_code == 400, wrong.text
    theirs = call(world, "oz", "POST", triggers_of(world, "theirs", "other"), json={"name": "x"})
    gone = call(world, "ada", "PATCH", f"{triggers_of(world, 'echo')}/{theirs.json()['id']}",
                json={"enabled": False})
    assert gone.status_code == 404
    assert shown(world, made["id"])["enabled"] is True


def test_a_ping_at_a_paused_or_stopped_trigger_is_no_pong(world: dict[str, Any]) -> None:
    """GitHub's ping checks a hook once: answered pong while the trigger starts nothing,
    the sender's page would say all is well."""
    ping = {"Content-Type": "application/json", "X-GitHub-Event": "ping"}
    body = b'{"zen": "Keep it logically awesome.", "hook_id": 2}'
    made = make(world)
    assert hook(world, made["url"], data=body, headers=ping).json()["pong"] is True
    patch(world, "sam", made["id"], {"enabled": False})
    paused = hook(world, made["url"], data=body, headers=ping)
    assert paused.status_code == 409 and paused.json()["error"]["code"] == "trigger_paused"
    assert "pong" not in paused.json()
    patch(world, "sam", made["id"], {"enabled": True})

    script = f"/api/f/lab/scripts/{world['ids']['echo']}"
    assert call(world, "sam", "PATCH", script, json={"published": False}).status_code == 200
    stopped = hook(world, made["url"], data=body, headers=ping)
    assert stopped.status_code == 409, stopped.text
    error = stopped.json()["error"]
    assert error["code"] == "trigger_stopped" and "not published" in error["message"]

    # Signed: a wrong secret is still said first.
    signed = call(world, "sam", "POST", triggers_of(world, "echo"),
                  json={"name": "S", "signed": True})
    assert signed.status_code == 409  # unpublished: none is made
    assert call(world, "sam", "PATCH", script, json={"published": True}).status_code == 200
    signed = call(world, "sam", "POST", triggers_of(world, "echo"),
                  json={"name": "S", "signed": True})
    made_signed = signed.json()
    patch(world, "sam", made_signed["id"], {"enabled": False})
    assert hook(world, made_signed["url"], data=body, headers=ping).status_code == 401
    good = {**ping, "X-Hub-Signature-256": signature(made_signed["signing_secret"], body)}
    assert hook(world, made_signed["url"], data=body, headers=good).status_code == 409


def test_refused_calls_are_traced_on_the_trigger(world: dict[str, Any]) -> None:
    made = make(world)
    other = make(world)
    assert (shown(world, made["id"])["last_refused"], made["refused_count"]) == (None, 0)

    def last() -> tuple[Any, ...]:
        found = shown(world, made["id"])
        refusal = found["last_refused"]
        return refusal["status"], refusal["code"], found["refused_count"]

    xml = hook(world, made["url"], data=b"<a/>", headers={"Content-Type": "application/xml"})
    assert xml.status_code == 415
    assert last() == (415, "unsupported_media_type", 1)
    assert shown(world, made["id"])["last_refused"]["at"] is not None
    assert hook(world, made["url"], json=[1]).status_code == 400
    assert last() == (400, "invalid_input", 2)
    # Refused before the view, by the app's own check of the body's size.
    limit = int(world["live"].app.config["MAX_REQUEST_BYTES"])
    assert hook(world, made["url"], json={"x": "a" * limit}).status_code == 413
    assert last() == (413, "request_too_large", 3)
    patch(world, "sam", made["id"], {"enabled": False})
    assert hook(world, made["url"], json={}).status_code == 409
    assert last() == (409, "trigger_paused", 4)
    patch(world, "sam", made["id"], {"enabled": True})

    # Accepted calls, a GET and calls at unknown tokens leave it as it was.
    assert hook(world, made["url"], json={}).status_code == 202
    opened = world["clients"]["mia"].http.get(
        world["live"].url + made["url"].removeprefix(
            str(world["live"].app.config["PUBLIC_URL"])), timeout=30)
    assert opened.status_code == 405
    assert hook(world, made["url"][:-3] + "abc", json=[1]).status_code == 404
    assert last() == (409, "trigger_paused", 4)
    with world["live"].app.app_context():
        counts = db.session().scalars(select(WebhookTrigger.refused_count)).all()
    assert sorted(counts) == [0, 4]  # nothing on the other trigger
    assert shown(world, other["id"])["last_refused"] is None

    world["live"].app.extensions["scriptbox.hook_throttle"] = HookThrottle(
        "memory://", per_trigger="1/minute")
    assert hook(world, made["url"], json={}).status_code == 202
    assert hook(world, made["url"], json={}).status_code == 429
    assert last() == (429, "too_many_attempts", 5)


def test_a_wrong_signature_is_traced(world: dict[str, Any]) -> None:
    signed = call(world, "sam", "POST", triggers_of(world, "echo"),
                  json={"name": "GitHub", "signed": True}).json()
    answer = hook(world, signed["url"], data=b"{}", headers={"Content-Type": "application/json"})
    assert answer.status_code == 401
    refusal = shown(world, signed["id"])["last_refused"]
    assert (refusal["status"], refusal["code"]) == (401, "signature_invalid")


def test_slacks_url_verification_hears_its_challenge(world: dict[str, Any]) -> None:
    """Slack's Events API POSTs {"type": "url_verification", "challenge"} to a new
    Request URL and accepts it once the challenge comes back; that starts no run, and
    only a trigger that would take the call otherwise answers it."""
    verify = {"token": "legacy", "type": "url_verification",
              "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    made = make(world)
    before = run_count(world)
    answer = hook(world, made["url"], json=verify)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"challenge": verify["challenge"]}
    assert run_count(world) == before
    assert shown(world, made["id"])["last_used_at"] is None  # it started nothing

    patch(world, "sam", made["id"], {"enabled": False})
    paused = hook(world, made["url"], json=verify)
    assert paused.status_code == 409 and "challenge" not in paused.text
    patch(world, "sam", made["id"], {"enabled": True})

    whole = call(world, "sam", "POST", triggers_of(world, "echo"),
                 json={"name": "Slack", "input": "request"}).json()
    assert hook(world, whole["url"], json=verify).json() == {"challenge": verify["challenge"]}

    signed = call(world, "sam", "POST", triggers_of(world, "echo"),
                  json={"name": "Signed", "signed": True}).json()
    assert hook(world, signed["url"], json=verify).status_code == 401
    body = b'{"type": "url_verification", "challenge": "c1"}'
    good = {"Content-Type": "application/json",
            "X-Hub-Signature-256": signature(signed["signing_secret"], body)}
    assert hook(world, signed["url"], data=body, headers=good).json() == {"challenge": "c1"}

    # Any other body is an event: it starts a run as ever.
    event = hook(world, made["url"], json={"type": "event_callback", "challenge": "x"})
    assert event.status_code == 202, event.text
    assert run_count(world) == before + 1
