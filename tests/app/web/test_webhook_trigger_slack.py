"""Slack-signed webhook triggers: the maker pastes the Slack app's signing secret (kept only
vault-encrypted, never shown nor logged); every POST must then carry Slack's
`X-Slack-Request-Timestamp` (within 5 minutes of now) and `X-Slack-Signature: v0=<hex
HMAC-SHA256 of "v0:{timestamp}:{body}">`, or it is a 401 in words that starts nothing and
is recorded as a refusal. Slack's URL check passes the same check; a retried event_id
starts no second run; GitHub-signed triggers are unchanged."""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any

import pytest

from app.services.trigger_refusals import RefusalTally
from app.services.trigger_signatures import signature, slack_signature
from tests.app.web.conftest import run_count, stored_rows
from tests.app.web.test_webhook_triggers import (
    call,
    ended,
    hook,
    make,
    refused_in_words,
    triggers_of,
    world,
)

__all__ = ["world"]  # the fixture, shared with the triggers' own tests

# A Slack app's signing secret has this shape (32 hexadecimal characters).
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
JSON = {"Content-Type": "application/json"}


def make_slack(world: dict[str, Any], secret: str = SECRET) -> dict[str, Any]:
    return make(world, name="Slack events", signature="slack", signing_secret=secret)


def signed(body: bytes, *, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if at is None else at))
    return {**JSON, "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": slack_signature(secret, stamp, body)}


def event(event_id: str) -> bytes:
    return json.dumps({"type": "event_callback", "event_id": event_id,
                       "event": {"type": "app_mention", "text": "hi"}}).encode()


def test_a_slack_signed_post_starts_a_run(world: dict[str, Any]) -> None:
    made = make_slack(world)
    assert (made["signed"], made["signature"], made["signing_secret"]) == (True, "slack", None)
    body = event("Ev1")
    started = hook(world, made["url"], data=body, headers=signed(body))
    assert started.status_code == 202, started.text
    assert ended(world, started.json()["run_id"])["result"]["input"]["event_id"] == "Ev1"
    # A form body (Slack's slash commands and interactivity) is signed as sent.
    form = b"command=%2Fdeploy&text=now"
    posted = hook(world, made["url"], data=form, headers={
        **signed(form), "Content-Type": "application/x-www-form-urlencoded"})
    assert posted.status_code == 202, posted.text
    assert ended(world, posted.json()["run_id"])["result"]["input"]["text"] == "now"


def test_missing_stale_and_wrong_signatures_are_refused(
    world: dict[str, Any],
) -> None:
    # Eleven refusals within a second, each counted as it comes (past ten a second, a
    # process writes them later: test_webhook_trigger_refusal_flood).
    world["live"].app.extensions["scriptbox.refusal_tally"] = RefusalTally(per_second=100)
    made = make_slack(world)
    body = event("Ev2")
    now = time.time()
    good = signed(body, at=now)
    refusals = [
        ("carries no X-Slack-Signature", {**JSON}),
        ("carries no X-Slack-Signature", {k: v for k, v in good.items()
                                          if k != "X-Slack-Request-Timestamp"}),
        ("carries no X-Slack-Signature", {k: v for k, v in good.items()
                                          if k != "X-Slack-Signature"}),
        ("not within 5 minutes of now", signed(body, at=now - 6 * 60)),  # replayed
        ("not within 5 minutes of now", signed(body, at=now + 6 * 60)),
        ("not within 5 minutes of now", {**good, "X-Slack-Request-Timestamp": "soon"}),
        ("is wrong", signed(body, secret="another" + SECRET, at=now)),
        ("is wrong", {**good, "X-Slack-Signature": signed(body + b" ", at=now)[
            "X-Slack-Signature"]}),  # another body's
        ("is wrong", {**good, "X-Slack-Signature": good["X-Slack-Signature"][3:]}),
        ("is wrong", {**good, "X-Slack-Signature": "v0=é"}),
        # GitHub's signature, by the same secret, is not Slack's
        ("carries no X-Slack-Signature", {**JSON, "X-Hub-Signature-256": signature(
            SECRET, body)}),
    ]
    before = run_count(world)
    for count, (words, headers) in enumerate(refusals, start=1):
        refused = hook(world, made["url"], data=body, headers=headers)
        assert refused.status_code == 401, (headers, refused.text)
        error = refused.json()["error"]
        assert error["code"] == "signature_invalid" and words in error["message"], error
        shown = call(world, "sam", "GET", triggers_of(world, "echo")).json()[0]
        assert shown["last_refused"]["code"] == "signature_invalid"
        assert shown["refused_count"] == count
    assert run_count(world) == before
    # Within the 5 minutes either way, a right signature is taken.
    assert hook(world, made["url"], data=body,
                headers=signed(body, at=now - 4 * 60)).status_code == 202


def test_slacks_url_check_must_be_signed_too(world: dict[str, Any]) -> None:
    made = make_slack(world)
    body = json.dumps({"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmd",
                       "type": "url_verification"}).encode()
    before = run_count(world)
    unsigned = hook(world, made["url"], data=body, headers=JSON)
    assert unsigned.status_code == 401, unsigned.text
    assert unsigned.json()["error"]["code"] == "signature_invalid"
    wrong = hook(world, made["url"], data=body, headers=signed(body, secret="x" * 32))
    assert wrong.status_code == 401, wrong.text
    answered = hook(world, made["url"], data=body, headers=signed(body))
    assert answered.status_code == 200, answered.text
    assert answered.json() == {"challenge": json.loads(body)["challenge"]}
    # An unsigned trigger answers it as before.
    plain = call(world, "sam", "POST", triggers_of(world, "echo"), json={"name": "P"}).json()
    assert hook(world, plain["url"], data=body, headers=JSON).json()["challenge"]
    assert run_count(world) == before


def test_a_retried_event_starts_one_run(world: dict[str, Any]) -> None:
    made = make_slack(world)
    body = event("Ev3")
    first = hook(world, made["url"], data=body, headers=signed(body))
    assert first.status_code == 202, first.text
    run_id = first.json()["run_id"]
    before = run_count(world)
    for retry in ("1", "2"):
        again = hook(world, made["url"], data=body, headers={
            **signed(body), "X-Slack-Retry-Num": retry, "X-Slack-Retry-Reason": "http_timeout"})
        assert again.status_code == 202, again.text
        assert again.json()["run_id"] == run_id and again.json()["repeated"] is True
    assert run_count(world) == before
    # Another event is a run of its own.
    other = event("Ev4")
    assert hook(world, made["url"], data=other,
                headers=signed(other)).json()["run_id"] != run_id
    assert run_count(world) == before + 1


def test_an_unsigned_triggers_body_event_id_is_no_delivery_id(world: dict[str, Any]) -> None:
    """Only a body Slack signed is trusted to name its event: another sender's event_id
    may mean anything."""
    plain = call(world, "sam", "POST", triggers_of(world, "echo"), json={"name": "P"}).json()
    body = event("Ev5")
    ids = {hook(world, plain["url"], data=body, headers=JSON).json()["run_id"] for _ in "ab"}
    assert len(ids) == 2


def test_the_slack_secret_is_never_shown_stored_in_the_clear_nor_logged(
    world: dict[str, Any], logged: io.StringIO,
) -> None:
    made = call(world, "sam", "POST", triggers_of(world, "echo"), json={
        "name": "Slack", "signature": "slack", "signing_secret": f"  {SECRET}\n"})
    assert made.status_code == 201 and SECRET not in made.text
    listed = call(world, "sam", "GET", triggers_of(world, "echo"))
    assert listed.json()[0]["signature"] == "slack" and SECRET not in listed.text
    paused = call(world, "sam", "PATCH", f"{triggers_of(world, 'echo')}/{made.json()['id']}",
                  json={"enabled": True})
    assert SECRET not in paused.text
    body = event("Ev6")
    assert hook(world, made.json()["url"], data=body, headers=signed(body)).status_code == 202
    assert hook(world, made.json()["url"], data=body,
                headers=signed(body, secret="f" * 32)).status_code == 401
    # Refused pastes name no part of what was pasted.
    for pasted in ("short", "two words " + SECRET):
        refused = call(world, "sam", "POST", triggers_of(world, "echo"), json={
            "name": "Slack", "signature": "slack", "signing_secret": pasted})
        assert refused.status_code == 400 and pasted not in refused.text
    assert "/hooks/" in logged.getvalue()  # the requests were logged, without the secret
    assert SECRET not in logged.getvalue() and SECRET[:16] not in logged.getvalue()
    for table, shown in stored_rows(world["live"]):
        assert SECRET not in shown, table
        assert base64.b64encode(SECRET.encode()).decode()[:40] not in shown


@pytest.mark.parametrize(("asked", "words"), [
    ({"signature": "slack"}, "paste the Slack app's signing secret"),
    ({"signature": "slack", "signing_secret": "   "}, "paste the Slack app's signing secret"),
    ({"signature": "github", "signing_secret": SECRET}, "pasted only with signature"),
    ({"signing_secret": SECRET}, "pasted only with signature"),
    ({"signed": True, "signature": None}, "signed and signature disagree"),
    ({"signed": False, "signature": "slack", "signing_secret": SECRET},
     "signed and signature disagree"),
])
def test_asking_for_a_scheme_wrongly_is_refused_in_words(
    world: dict[str, Any], asked: dict[str, Any], words: str
) -> None:
    refused_in_words(world, asked, words)


def test_github_signing_is_asked_either_way_and_unchanged(world: dict[str, Any]) -> None:
    for asked in ({"signed": True}, {"signature": "github"},
                  {"signed": True, "signature": "github"}):
        made = call(world, "sam", "POST", triggers_of(world, "echo"),
                    json={"name": "GitHub", **asked}).json()
        assert (made["signed"], made["signature"]) == (True, "github")
        body = b'{"ref": "main"}'
        assert hook(world, made["url"], data=body, headers=JSON).status_code == 401
        # Slack's signature, by the secret made, is not GitHub's.
        slack = signed(body, secret=made["signing_secret"])
        assert hook(world, made["url"], data=body, headers=slack).status_code == 401
        good = {**JSON, "X-Hub-Signature-256": signature(made["signing_secret"], body)}
        assert hook(world, made["url"], data=body, headers=good).status_code == 202
    plain = call(world, "sam", "POST", triggers_of(world, "echo"),
                 json={"name": "Plain", "signature": None}).json()
    assert (plain["signed"], plain["signature"], plain["signing_secret"]) == (False, None, None)
