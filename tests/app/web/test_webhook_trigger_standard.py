"""Standard Webhooks-signed triggers (Svix, Resend, Clerk, Supabase, OpenAI...): the maker
pastes the sender's `whsec_` secret (kept only vault-encrypted, never shown nor logged);
every POST must then carry `webhook-id`, `webhook-timestamp` (within 5 minutes of now) and
`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, or it is a 401
in words that starts nothing and is recorded as a refusal. A replayed webhook-id starts no
second run. The requests are signed by the standardwebhooks package's own signer, as a
sender signs them."""

from __future__ import annotations

import base64
import io
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks import Webhook

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

# A sender's secret has this shape: whsec_ and the base64 of 24 random bytes (Svix's).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER = "whsec_" + base64.b64encode(b"another sender's 24 bytes").decode()
JSON = {"Content-Type": "application/json"}


def make_standard(world: dict[str, Any], secret: str = SECRET) -> dict[str, Any]:
    return make(world, name="Resend events", signature="standard", signing_secret=secret)


def signed(
    body: bytes, msg_id: str, *, secret: str = SECRET, at: float | None = None
) -> dict[str, str]:
    """The headers a Standard Webhooks sender sends with `body`, signed at `at`."""
    sent = time.time() if at is None else at
    when = datetime.fromtimestamp(sent, tz=UTC)
    return {**JSON, "webhook-id": msg_id, "webhook-timestamp": str(int(sent)),
            "webhook-signature": Webhook(secret).sign(msg_id, when, body)}


def event(kind: str) -> bytes:
    return json.dumps({"type": kind, "data": {"email": "ann@example.com"}}).encode()


def test_a_standard_signed_post_starts_a_run(world: dict[str, Any]) -> None:
    made = make_standard(world)
    assert (made["signed"], made["signature"], made["signing_secret"]) == (
        True, "standard", None)
    body = event("email.sent")
    started = hook(world, made["url"], data=body, headers=signed(body, "msg_1"))
    assert started.status_code == 202, started.text
    run = ended(world, started.json()["run_id"])
    assert run["result"]["input"]["type"] == "email.sent"
    # A sender rotating its secret signs with the old and the new one, space-separated.
    both = signed(body, "msg_2")
    both["webhook-signature"] = " ".join(
        [signed(body, "msg_2", secret=OTHER)["webhook-signature"], both["webhook-signature"]])
    assert hook(world, made["url"], data=body, headers=both).status_code == 202
    listed = call(world, "sam", "GET", triggers_of(world, "echo")).json()[0]
    assert listed["signature"] == "standard" and listed["last_used_at"] is not None


def test_missing_stale_and_wrong_signatures_are_refused(world: dict[str, Any]) -> None:
    # Each refusal counted as it comes (past ten a second, a process writes them later).
    world["live"].app.extensions["scriptbox.refusal_tally"] = RefusalTally(per_second=100)
    made = make_standard(world)
    body = event("user.created")
    now = time.time()
    good = signed(body, "msg_good", at=now)

    def without(name: str) -> dict[str, str]:
        return {key: value for key, value in good.items() if key != name}

    refusals = [
        ("carries no webhook-id or webhook-timestamp or webhook-signature", {**JSON}),
        ("carries no webhook-id.", without("webhook-id")),
        ("carries no webhook-timestamp.", without("webhook-timestamp")),
        ("carries no webhook-signature.", without("webhook-signature")),
        ("webhook-timestamp is not within 5 minutes of now",
         signed(body, "msg_good", at=now - 6 * 60)),  # a replay of an old request
        ("webhook-timestamp is not within 5 minutes of now",
         signed(body, "msg_good", at=now + 6 * 60)),
        ("webhook-timestamp is not within 5 minutes of now",
         {**good, "webhook-timestamp": "soon"}),
        ("webhook-timestamp is not within 5 minutes of now",
         {**good, "webhook-timestamp": good["webhook-timestamp"] + ".0"}),
        ("webhook-signature is wrong", signed(body, "msg_good", secret=OTHER, at=now)),
        ("webhook-signature is wrong", {**good, "webhook-signature": signed(
            body + b" ", "msg_good", at=now)["webhook-signature"]}),  # another body's
        ("webhook-signature is wrong", {**good, "webhook-id": "msg_other"}),  # not signed
        ("webhook-signature is wrong", {**good, "webhook-timestamp": str(int(now) - 1)}),
        ("webhook-signature is wrong", {**good, "webhook-signature": good[
            "webhook-signature"].removeprefix("v1,")}),
        ("webhook-signature is wrong", {**good, "webhook-signature": "v1,é"}),
        ("webhook-signature is wrong", {**good, "webhook-signature": "v1,a,b,c"}),
        # GitHub's and Slack's signatures, by the same secret, are not the standard's.
        ("carries no webhook-id", {**JSON, "X-Hub-Signature-256": signature(SECRET, body)}),
        ("carries no webhook-id", {**JSON, "X-Slack-Request-Timestamp": str(int(now)),
                                   "X-Slack-Signature": slack_signature(
                                       SECRET, str(int(now)), body)}),
    ]
    before = run_count(world)
    for count, (words, headers) in enumerate(refusals, start=1):
        refused = hook(world, made["url"], data=body, headers=headers)
        assert refused.status_code == 401, (headers, refused.text)
        error = refused.json()["error"]
        assert error["code"] == "signature_invalid" and words in error["message"], error
        assert SECRET not in refused.text and SECRET[len("whsec_"):] not in refused.text
        shown = call(world, "sam", "GET", triggers_of(world, "echo")).json()[0]
        assert shown["last_refused"]["code"] == "signature_invalid"
        assert shown["last_refused"]["status"] == 401
        assert shown["refused_count"] == count
    assert run_count(world) == before
    # What to fix at the sender: the secret pasted here, made by the sender.
    wrong = hook(world, made["url"], data=body, headers=signed(body, "m", secret=OTHER))
    assert "the one pasted when the trigger was made" in wrong.json()["error"]["message"]
    # Within the 5 minutes either way, a right signature is taken.
    late = hook(world, made["url"], data=body, headers=signed(body, "msg_late", at=now - 4 * 60))
    assert late.status_code == 202, late.text
    assert run_count(world) == before + 1


def test_a_replayed_webhook_id_starts_no_second_run(world: dict[str, Any]) -> None:
    """The sender's retries carry the webhook-id it signed, re-signed at their time: the
    first run answers them. So does the same request replayed within its 5 minutes, even
    with an Idempotency-Key or X-GitHub-Delivery added (those the sender does not sign)."""
    made = make_standard(world)
    body = event("invoice.paid")
    headers = signed(body, "msg_replayed")
    first = hook(world, made["url"], data=body, headers=headers)
    assert first.status_code == 202, first.text
    run_id = first.json()["run_id"]
    before = run_count(world)
    replays = [
        headers,  # the very request again
        signed(body, "msg_replayed", at=time.time() + 1),  # the sender's retry
        {**headers, "Idempotency-Key": "another"},
        {**headers, "X-GitHub-Delivery": "yet-another"},
    ]
    for replayed in replays:
        again = hook(world, made["url"], data=body, headers=replayed)
        assert again.status_code == 202, again.text
        assert again.json() == {"run_id": run_id, "status": again.json()["status"],
                                "repeated": True}
    assert run_count(world) == before
    # Another message is a run of its own, and so is another trigger's same id.
    other = hook(world, made["url"], data=body, headers=signed(body, "msg_next"))
    assert other.status_code == 202 and other.json()["run_id"] != run_id
    second = make_standard(world)
    again = hook(world, second["url"], data=body, headers=signed(body, "msg_replayed"))
    assert again.status_code == 202 and "repeated" not in again.json()
    assert run_count(world) == before + 2


def test_the_secret_is_never_shown_stored_in_the_clear_nor_logged(
    world: dict[str, Any], logged: io.StringIO,
) -> None:
    made = call(world, "sam", "POST", triggers_of(world, "echo"), json={
        "name": "Clerk", "signature": "standard", "signing_secret": f"  {SECRET}\n"})
    assert made.status_code == 201, made.text
    key = SECRET.removeprefix("whsec_")
    assert key not in made.text and made.json()["signing_secret"] is None
    listed = call(world, "sam", "GET", triggers_of(world, "echo"))
    assert listed.json()[0]["signature"] == "standard" and key not in listed.text
    body = event("session.created")
    assert hook(world, made.json()["url"], data=body,
                headers=signed(body, "msg_a")).status_code == 202
    assert hook(world, made.json()["url"], data=body,
                headers=signed(body, "msg_b", secret=OTHER)).status_code == 401
    assert "/hooks/" in logged.getvalue()  # the requests were logged, without the secret
    assert key not in logged.getvalue() and key[:16] not in logged.getvalue()
    for table, shown in stored_rows(world["live"]):
        assert key not in shown, table
        assert base64.b64encode(SECRET.encode()).decode()[:40] not in shown


def test_supabases_v1_prefixed_secret_is_taken(world: dict[str, Any]) -> None:
    """Supabase shows its hooks' secrets as `v1,whsec_...`: pasted so, it signs as the
    secret itself."""
    made = make_standard(world, secret=f"v1,{SECRET}")
    body = event("auth.hook")
    started = hook(world, made["url"], data=body, headers=signed(body, "msg_supabase"))
    assert started.status_code == 202, started.text


@pytest.mark.parametrize(("pasted", "words"), [
    (None, "paste the sender's signing secret"),
    ("   ", "paste the sender's signing secret"),
    ("v1,", "paste the sender's signing secret"),
    ("8f742231b10e8888abcd99yyyzzz85a5", "this is not a Standard Webhooks signing secret"),
    ("whsec_", "this is not a Standard Webhooks signing secret"),
    ("whsec_c2hvcnQ=", "this is not a Standard Webhooks signing secret"),  # 5 bytes
    ("whsec_" + "QUFB" * 60, "this is not a Standard Webhooks signing secret"),  # 180
    ("whsec_MfKQ9r8GKYqr TwjUPD8ILPZIo2LaLaSw", "this is not a Standard Webhooks"),
    ("whsec_MfKQ9r8GKYqr-wjUPD8ILPZIo2LaLa_w", "this is not a Standard Webhooks"),
    ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwA", "this is not a Standard Webhooks"),
    ("sk_live_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "this is not a Standard Webhooks"),
])
def test_a_paste_that_cannot_be_a_whsec_secret_is_refused_in_words(
    world: dict[str, Any], pasted: str | None, words: str
) -> None:
    asked: dict[str, Any] = {"name": "S", "signature": "standard"}
    if pasted is not None:
        asked["signing_secret"] = pasted
    refused = call(world, "sam", "POST", triggers_of(world, "echo"), json=asked)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert words in error["message"] and error["field"] == "signing_secret", error
    if pasted is not None and len(pasted.strip()) > len("whsec_"):  # names none of it
        assert pasted.strip() not in refused.text
    assert call(world, "sam", "GET", triggers_of(world, "echo")).json() == []


@pytest.mark.parametrize(("asked", "words"), [
    ({"signature": "github", "signing_secret": SECRET},
     'pasted only with signature "slack" or "standard"'),
    ({"signing_secret": SECRET}, 'pasted only with signature "slack" or "standard"'),
    ({"signed": False, "signature": "standard", "signing_secret": SECRET},
     "signed and signature disagree"),
])
def test_asking_for_the_scheme_wrongly_is_refused_in_words(
    world: dict[str, Any], asked: dict[str, Any], words: str
) -> None:
    refused_in_words(world, asked, words)
