"""Signed webhook triggers: a scripter may ask for a signing secret (shown once, kept only
vault-encrypted, never logged); every POST must then carry GitHub's
`X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`, or it is a 401 in
words that starts nothing."""

from __future__ import annotations

import base64
import io
from typing import Any

from app import extensions
from app.services.trigger_signatures import signature
from app.services.vault_rotation import rotate_all
from app.web.throttle import HookThrottle
from tests.app.web.conftest import run_count, stored_rows
from tests.app.web.test_webhook_triggers import call, ended, hook, make, triggers_of, world

__all__ = ["world"]  # the fixture, shared with the triggers' own tests


def make_signed(world: dict[str, Any]) -> dict[str, Any]:
    return make(world, name="GitHub push", signed=True)


def test_a_signed_trigger_starts_runs_only_for_signed_bodies(world: dict[str, Any]) -> None:
    made = make_signed(world)
    secret = made["signing_secret"]
    assert made["signed"] is True and secret.startswith("sbs_") and len(secret) >= 4 + 43
    listed = call(world, "sam", "GET", triggers_of(world, "echo"))
    assert listed.json()[0]["signed"] is True
    assert "signing_secret" not in listed.json()[0] and secret not in listed.text

    body = b'{"ref": "refs/heads/main"}'
    json_type = {"Content-Type": "application/json"}
    before = run_count(world)
    forged = [
        {},  # absent
        {"X-Hub-Signature-256": signature("sbs_guess", body)},
        {"X-Hub-Signature-256": signature(secret, body + b" ")},  # another body's
        {"X-Hub-Signature-256": signature(secret, body)[len("sha256="):]},  # no scheme
        {"X-Hub-Signature-256": "sha256=é"},
    ]
    for headers in forged:
        refused = hook(world, made["url"], data=body, headers={**json_type, **headers})
        assert refused.status_code == 401, (headers, refused.text)
        error = refused.json()["error"]
        assert error["code"] == "signature_invalid"
        assert "this trigger needs a signature: set the webhook's secret" in error["message"]
    assert run_count(world) == before

    signed = hook(world, made["url"], data=body,
                  headers={**json_type, "X-Hub-Signature-256": signature(secret, body)})
    assert signed.status_code == 202, signed.text
    assert ended(world, signed.json()["run_id"])["result"]["input"] == {"ref": "refs/heads/main"}
    # A form body is signed as sent, before it is parsed.
    form = b"name=Ann&age=7"
    posted = hook(world, made["url"], data=form, headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Hub-Signature-256": signature(secret, form)})
    assert posted.status_code == 202, posted.text
    assert ended(world, posted.json()["run_id"])["result"]["input"] == {"name": "Ann", "age": "7"}
    assert run_count(world) == before + 2


def test_an_unsigned_trigger_still_takes_unsigned_posts(world: dict[str, Any]) -> None:
    made = call(world, "sam", "POST", triggers_of(world, "echo"), json={"name": "Form"}).json()
    assert (made["signed"], made["signing_secret"]) == (False, None)
    assert hook(world, made["url"], json={"a": 1}).status_code == 202


def test_the_signing_secret_is_stored_nowhere_in_the_clear_nor_logged(
    world: dict[str, Any], logged: io.StringIO
) -> None:
    made = make_signed(world)
    secret = made["signing_secret"]
    body = b'{"x": 1}'
    good = {"Content-Type": "application/json",
            "X-Hub-Signature-256": signature(secret, body)}
    assert hook(world, made["url"], data=body, headers=good).status_code == 202
    assert hook(world, made["url"], data=body,
                headers={**good, "X-Hub-Signature-256": "sha256=00"}).status_code == 401
    raw = secret[len("sbs_"):]
    assert "/hooks/" in logged.getvalue()  # the requests were logged, without the secret
    assert raw not in logged.getvalue()
    for table, shown in stored_rows(world["live"]):
        assert raw not in shown, table
        assert base64.b64encode(secret.encode()).decode()[:40] not in shown


def test_rotate_keys_re_encrypts_signing_secrets(world: dict[str, Any]) -> None:
    app = world["live"].app
    with app.app_context():
        before = rotate_all(vault=extensions.vault(app))
    made = make_signed(world)
    with app.app_context():
        assert rotate_all(vault=extensions.vault(app)) == before + 1
    body = b"{}"
    still = hook(world, made["url"], data=body, headers={
        "Content-Type": "application/json",
        "X-Hub-Signature-256": signature(made["signing_secret"], body)})
    assert still.status_code == 202, still.text


def test_githubs_ping_answers_pong_and_starts_no_run(world: dict[str, Any]) -> None:
    made = make_signed(world)
    plain = call(world, "sam", "POST", triggers_of(world, "echo"), json={"name": "P"}).json()
    body = b'{"zen": "Design for failure.", "hook_id": 1}'
    ping = {"Content-Type": "application/json", "X-GitHub-Event": "ping",
            "X-GitHub-Delivery": "ping-1"}
    before = run_count(world)
    # Signed: the ping is checked first (a wrong secret shows at the sender's first try).
    unsigned = hook(world, made["url"], data=body, headers=ping)
    assert unsigned.status_code == 401, unsigned.text
    signed = hook(world, made["url"], data=body,
                  headers={**ping, "X-Hub-Signature-256": signature(made["signing_secret"], body)})
    assert signed.status_code == 200, signed.text
    assert signed.json()["pong"] is True and "starts no run" in signed.json()["message"]
    assert "run_id" not in signed.json()
    answered = hook(world, plain["url"], data=body, headers=ping)
    assert (answered.status_code, answered.json()["pong"]) == (200, True)
    assert run_count(world) == before
    push = hook(world, plain["url"], data=body, headers={**ping, "X-GitHub-Event": "push"})
    assert push.status_code == 202 and run_count(world) == before + 1


def test_unsigned_calls_spend_none_of_the_signed_senders_runs(world: dict[str, Any]) -> None:
    """Whoever learnt a signed trigger's URL, without its secret, cannot use up the
    trigger's runs a minute (the throttle counts only signed calls)."""
    world["live"].app.extensions["scriptbox.hook_throttle"] = HookThrottle(
        "memory://", per_trigger="2/minute")
    made = make_signed(world)
    body = b'{"ref": "refs/heads/main"}'
    json_type = {"Content-Type": "application/json"}
    for _ in range(3):
        assert hook(world, made["url"], data=body, headers=json_type).status_code == 401
    signed = {**json_type, "X-Hub-Signature-256": signature(made["signing_secret"], body)}
    answers = [hook(world, made["url"], data=body, headers=signed) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 429], [a.text for a in answers]
