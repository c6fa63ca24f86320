"""Webhook triggers: scripters and admins make a published script's secret URL (shown
once), list and revoke them; a POST to the URL starts a run as its maker with the body as
input (trigger `webhook`), answering only the run's id and status. Wrong, revoked or
forged tokens, another facility's ids, huge or foreign bodies, an unpublished script and
a maker who left are refused in words; the token is stored only as its hash."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import requests
from sqlalchemy import select

from app import db, extensions
from app.models import Membership, Role, Script
from app.testing import LiveServer
from app.web.throttle import HookThrottle
from tests.app.web.conftest import call, stored_rows, two_facilities


@pytest.fixture
def world(live: LiveServer) -> dict[str, Any]:
    """lab: admin Ada, scripters Sam and Sue, member Mia, a published script that answers
    its input, a draft and one that calls an integration nobody connected; other:
    scripter Oz and his published script."""
    return two_facilities(
        live,
        lab_roles={"ada": Role.admin, "sam": Role.scripter, "sue": Role.scripter,
                   "mia": Role.member},
        integrations=("keyed",),
        scripts=lambda lab, other: {
            "echo": Script(facility_id=lab.id, name="Echo", published=True,
                           source="result = {'input': input, 'user': user['name']}"),
            "draft": Script(facility_id=lab.id, name="Draft", source="result = 1"),
            "signs": Script(facility_id=lab.id, name="Signs", published=True, source=(
                "try:\n    integrations.get('keyed', '/x')\n"
                "except integrations.NoIntegrationGrant as e:\n    result = e.reason\n")),
            "theirs": Script(facility_id=other.id, name="Theirs", source="result = 2",
                             published=True),
        },
    )


def triggers_of(world: dict[str, Any], script: str, slug: str = "lab") -> str:
    return f"/api/f/{slug}/scripts/{world['ids'][script]}/triggers"


def make(
    world: dict[str, Any], script: str = "echo", who: str = "sam", **fields: Any
) -> dict[str, Any]:
    """A trigger `who` made of `script`, named "Signup form" unless `fields` say otherwise."""
    made = call(world, who, "POST", triggers_of(world, script),
                json={"name": "Signup form", **fields})
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def refused_in_words(world: dict[str, Any], asked: dict[str, Any], words: str) -> None:
    """Making a trigger of echo with `asked` (a signing scheme asked for wrongly) is a 400
    whose message holds `words`, and makes none (the Slack and Standard Webhooks tests)."""
    refused = call(world, "sam", "POST", triggers_of(world, "echo"), json={"name": "S", **asked})
    assert refused.status_code == 400, refused.text
    assert words in refused.json()["error"]["message"]
    assert call(world, "sam", "GET", triggers_of(world, "echo")).json() == []


def hook(world: dict[str, Any], url: str, **kw: Any) -> requests.Response:
    """POST to a trigger's URL as a third party would: no cookie, no token, no CSRF."""
    live: LiveServer = world["live"]
    path = url.removeprefix(str(live.app.config["PUBLIC_URL"]))
    return requests.post(live.url + path, timeout=30, **kw)


def ended(world: dict[str, Any], run_id: str) -> dict[str, Any]:
    done = extensions.run_queue(world["live"].app).wait(run_id, 60)
    assert done is not None
    return done


def test_a_scripter_makes_lists_and_revokes_a_trigger(world: dict[str, Any]) -> None:
    base = triggers_of(world, "echo")
    made = make(world)
    public = world["live"].app.config["PUBLIC_URL"]
    assert made["url"].startswith(f"{public}/hooks/sbh_")  # as other absolute links
    token = made["url"].rsplit("/", 1)[1]
    assert len(token) >= len("sbh_") + 43  # 32 random bytes, url-safe
    assert (made["name"], made["runs_as"], made["last_used_at"]) == (
        "Signup form", {"id": world["ids"]["sam"], "name": "Sam"}, None)
    listed = call(world, "ada", "GET", base)
    assert listed.status_code == 200
    assert [t["id"] for t in listed.json()] == [made["id"]]
    assert "url" not in listed.json()[0] and token not in listed.text

    assert call(world, "sam", "DELETE", f"{base}/{made['id']}").status_code == 204
    assert call(world, "sam", "GET", base).json() == []
    gone = hook(world, made["url"], json={})
    assert gone.status_code == 404
    assert "no webhook trigger has this URL" in gone.json()["error"]["message"]


def test_who_may_make_and_revoke_triggers(world: dict[str, Any]) -> None:
    base = triggers_of(world, "echo")
    made = make(world)
    one = f"{base}/{made['id']}"
    for method, path, body in (("GET", base, None), ("POST", base, {"name": "x"}),
                               ("DELETE", one, None)):
        answer = call(world, "mia", method, path, json=body)
        assert answer.status_code == 403, (method, answer.text)
        assert "scripter role" in answer.json()["error"]["message"]
    # Another scripter sees it, but may not revoke what runs as Sam; an admin may.
    assert [t["id"] for t in call(world, "sue", "GET", base).json()] == [made["id"]]
    refused = call(world, "sue", "DELETE", one)
    assert refused.status_code == 403 and "only they or an admin" in refused.text
    assert call(world, "ada", "DELETE", one).status_code == 204

    draft = call(world, "sam", "POST", triggers_of(world, "draft"), json={"name": "x"})
    assert draft.status_code == 409 and "publish the script first" in draft.text
    nameless = call(world, "sam", "POST", base, json={"name": "  "})
    assert nameless.status_code == 400 and nameless.json()["error"]["field"] == "name"
    for _ in range(10):
        make(world)
    full = call(world, "sam", "POST", base, json={"name": "eleventh"})
    assert full.status_code == 409 and "at most 10 webhook triggers" in full.text


def test_another_facilitys_ids_are_404(world: dict[str, Any]) -> None:
    theirs = call(world, "oz", "POST", triggers_of(world, "theirs", "other"),
                  json={"name": "Oz's"})
    assert theirs.status_code == 201
    their_id = theirs.json()["id"]
    # Their script through our facility, their trigger under our script: not found.
    for method, body in (("GET", None), ("POST", {"name": "mine now"})):
        answer = call(world, "ada", method, triggers_of(world, "theirs"), json=body)
        assert answer.status_code == 404, answer.text
    for path in (f"{triggers_of(world, 'echo')}/{their_id}",
                 f"{triggers_of(world, 'theirs')}/{their_id}"):
        assert call(world, "ada", "DELETE", path).status_code == 404
    # Their facility itself: Ada is no member.
    assert call(world, "ada", "GET", triggers_of(world, "theirs", "other")).status_code == 404
    assert len(call(world, "oz", "GET", triggers_of(world, "theirs", "other")).json()) == 1


def test_a_post_starts_a_run_as_the_maker_with_the_body_as_input(
    world: dict[str, Any],
) -> None:
    made = make(world)
    answer = hook(world, made["url"], json={"email": "new@example.com", "n": 3})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert set(body) == {"run_id", "status"}  # never the run's output: the caller is anonymous
    assert "Set-Cookie" not in answer.headers  # no session is started for the caller
    run = ended(world, body["run_id"])
    assert run["status"] == "succeeded", run
    assert run["result"] == {"input": {"email": "new@example.com", "n": 3}, "user": "Sam"}
    shown = call(world, "sam", "GET", f"/api/f/lab/runs/{body['run_id']}").json()
    assert (shown["trigger"], shown["user"]["name"]) == ("webhook", "Sam")
    listed = call(world, "sam", "GET", triggers_of(world, "echo")).json()
    assert listed[0]["last_used_at"] is not None
    page = world["clients"]["sam"].http.get(
        f"{world['live'].url}/f/lab/runs/{body['run_id']}", timeout=30)
    assert 'id="run-trigger">Webhook trigger<' in page.text

    form = hook(world, made["url"], data={"name": "Ann", "age": "7"})
    assert form.status_code == 202, form.text
    assert ended(world, form.json()["run_id"])["result"]["input"] == {"name": "Ann", "age": "7"}
    empty = hook(world, made["url"])
    assert empty.status_code == 202, empty.text
    assert ended(world, empty.json()["run_id"])["result"]["input"] is None
    slashed = hook(world, made["url"] + "/", json={"n": 4})  # as a paste may end it
    assert slashed.status_code == 202, slashed.text
    assert ended(world, slashed.json()["run_id"])["result"]["input"] == {"n": 4}


def test_a_call_that_needs_a_sign_in_fails_not_interactive(world: dict[str, Any]) -> None:
    made = make(world, "signs")
    answer = hook(world, made["url"], json={})
    assert answer.status_code == 202, answer.text
    assert ended(world, answer.json()["run_id"])["result"] == "not_interactive"


@pytest.mark.parametrize("token", [
    "sbh_" + secrets.token_urlsafe(32),  # forged: the right shape, no trigger
    "wrong",
    "sbh_" + "a" * 500,  # longer than any token
])
def test_a_wrong_or_forged_token_is_404_in_words(world: dict[str, Any], token: str) -> None:
    make(world)
    answer = hook(world, f"/hooks/{token}", json={})
    assert answer.status_code == 404, answer.text
    error = answer.json()["error"]
    assert error["code"] == "not_found" and "revoked" in error["message"]


def test_bodies_it_cannot_take_are_refused_in_words(world: dict[str, Any]) -> None:
    made = make(world)
    xml = hook(world, made["url"], data=b"<a/>", headers={"Content-Type": "application/xml"})
    assert xml.status_code == 415, xml.text
    assert "application/json" in xml.json()["error"]["message"]
    array = hook(world, made["url"], json=[1, 2])
    assert array.status_code == 400 and "JSON object" in array.json()["error"]["message"]
    broken = hook(world, made["url"], data=b"{nope",
                  headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and "not JSON" in broken.json()["error"]["message"]
    limit = int(world["live"].app.config["MAX_REQUEST_BYTES"])
    huge = hook(world, made["url"], json={"x": "a" * limit})
    assert huge.status_code == 413, huge.text
    assert limit == 1024 * 1024  # so the size below is this limit's, in words
    assert "larger than 1 MiB, the most this server accepts: send less than 1 MiB" in (
        huge.json()["error"]["message"]
    )


def test_a_get_says_what_the_url_is_for(world: dict[str, Any]) -> None:
    """Opened in a browser, the URL says it takes POSTs and how to use it (not Werkzeug's
    bare 'not allowed') and starts nothing; a wrong or revoked one says so, as a POST does."""
    live: LiveServer = world["live"]
    made = make(world)
    path = made["url"].removeprefix(str(live.app.config["PUBLIC_URL"]))
    opened = requests.get(live.url + path, timeout=30, headers={"Accept": "text/html"})
    assert opened.status_code == 405 and opened.headers["Allow"] == "OPTIONS, POST", opened.text
    said = opened.json()["error"]["message"]
    assert "webhook trigger's URL" in said and "POST" in said and "curl" in said
    wrong = requests.get(f"{live.url}/hooks/sbh_{secrets.token_urlsafe(32)}", timeout=30)
    assert wrong.status_code == 404 and "revoked" in wrong.json()["error"]["message"]
    listed = call(world, "sam", "GET", triggers_of(world, "echo")).json()
    assert listed[0]["last_used_at"] is None


def test_the_panel_says_only_the_body_reaches_the_script(world: dict[str, Any]) -> None:
    """A GitHub user is told to send JSON (GitHub's default form hides the payload in one
    text field) and that the event header does not reach the script."""
    page = world["clients"]["sam"].http.get(
        f"{world['live'].url}/f/lab/editor/{world['ids']['echo']}", timeout=30)
    panel = page.text[page.text.index('id="triggers-panel"'):]
    panel = panel[:panel.index("</details>")]
    assert "Only the body reaches the script" in panel
    assert "<code>application/json</code>" in panel and "<code>X-GitHub-Event</code>" in panel


def test_a_body_the_scripts_input_cannot_take_says_what_to_send(
    world: dict[str, Any],
) -> None:
    """The caller sees only the answer (e.g. in GitHub's delivery log): a refused input
    says it is the body, and what to send or whom to ask."""
    made = make(world)
    big = hook(world, made["url"], json={"x": "a" * 300_000})
    assert big.status_code == 400, big.text
    said = big.json()["error"]["message"]
    assert said.startswith("the body cannot be this script's input: input is larger than")
    assert said.endswith("send a smaller body")
    script = f"/api/f/lab/scripts/{world['ids']['echo']}"
    declared = call(world, "sam", "PATCH", script,
                    json={"inputs": [{"name": "email", "type": "text"}]})
    assert declared.status_code == 200, declared.text
    foreign = hook(world, made["url"], json={"ref": "refs/heads/main", "commits": []})
    assert foreign.status_code == 400, foreign.text
    error = foreign.json()["error"]
    assert error["field"] == "input" and "does not declare (declared: email)" in error["message"]
    assert "ask a scripter of the facility to change its declared inputs" in error["message"]


def test_an_unpublished_script_or_a_maker_who_left_starts_nothing(
    world: dict[str, Any],
) -> None:
    live: LiveServer = world["live"]
    made = make(world)
    script = f"/api/f/lab/scripts/{world['ids']['echo']}"
    assert call(world, "sam", "GET", triggers_of(world, "echo")).json()[0]["stopped"] is None
    assert call(world, "sam", "PATCH", script, json={"published": False}).status_code == 200
    listed = call(world, "sam", "GET", triggers_of(world, "echo")).json()
    assert listed[0]["stopped"].startswith("the script is not published")
    unpublished = hook(world, made["url"], json={})
    assert unpublished.status_code == 409, unpublished.text
    said = unpublished.json()["error"]["message"]
    assert "this trigger's script is not published" in said and "Echo" not in said
    assert call(world, "sam", "PATCH", script, json={"published": True}).status_code == 200
    assert hook(world, made["url"], json={}).status_code == 202

    with live.app.app_context():
        membership = db.session.scalar(select(Membership).where(
            Membership.user_id == world["ids"]["sam"]))
        assert membership is not None
        membership.role = Role.member
        db.session.commit()
    demoted = hook(world, made["url"], json={})
    assert demoted.status_code == 409 and "no longer has the scripter role" in demoted.text
    # The panel's list says why the URL stops (its caller only sees the 409).
    listed = call(world, "ada", "GET", triggers_of(world, "echo")).json()
    assert "no longer has the scripter role" in listed[0]["stopped"]
    removed = call(world, "ada", "DELETE", f"/api/f/lab/members/{world['ids']['sam']}")
    assert removed.status_code == 204, removed.text
    gone = hook(world, made["url"], json={})
    assert gone.status_code == 409 and "no longer in the facility" in gone.text
    listed = call(world, "ada", "GET", triggers_of(world, "echo")).json()
    assert "no longer in the facility" in listed[0]["stopped"]


def test_calls_past_the_triggers_rate_and_the_queue_cap_are_429(world: dict[str, Any]) -> None:
    live: LiveServer = world["live"]
    made = make(world)
    live.app.extensions["scriptbox.hook_throttle"] = HookThrottle(
        "memory://", per_trigger="2/minute")
    assert [hook(world, made["url"]).status_code for _ in range(2)] == [202, 202]
    third = hook(world, made["url"])
    assert third.status_code == 429 and int(third.headers["Retry-After"]) > 0
    assert "Too many calls of this webhook trigger" in third.json()["error"]["message"]

    other = make(world)  # its own count
    live.app.config["MAX_QUEUED_RUNS_PER_USER"] = 0
    full = hook(world, other["url"])
    assert full.status_code == 429 and full.json()["error"]["code"] == "too_many_queued_runs"


def test_the_token_is_never_stored(world: dict[str, Any]) -> None:
    made = make(world)
    token = made["url"].rsplit("/", 1)[1]
    assert hook(world, made["url"], json={"hello": 1}).status_code == 202
    for table, shown in stored_rows(world["live"]):
        assert token not in shown, table
        assert token[4:] not in shown, table


def test_the_logs_say_hooks_without_the_token(world: dict[str, Any]) -> None:
    """The access log leaves out query strings, but a trigger's token is in the path: the
    access line (gunicorn's atoms), the servers' own lines and the app's error lines
    (Flask's "Exception on <path>") say /hooks/… instead."""
    import io
    import logging
    from datetime import timedelta
    from types import SimpleNamespace

    from app.serving import QueryFreeLogger, redact_app_logs

    token = make(world)["url"].rsplit("/", 1)[1]
    path = f"/hooks/{token}"
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "SERVER_PROTOCOL": "HTTP/1.1"}
    atoms = QueryFreeLogger.atoms(SimpleNamespace(now=lambda: "[now]"),
                                  SimpleNamespace(status="202 ACCEPTED", sent=40), None,
                                  environ, timedelta(milliseconds=5))
    assert atoms["U"] == "/hooks/…"

    app = world["live"].app
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    app.logger.addHandler(handler)
    try:
        redact_app_logs(app)
        app.logger.error("Exception on %s [POST]", path)
        logging.getLogger("app.web").warning("POST %s?x=1 could not reach the database", path)
    finally:
        app.logger.removeHandler(handler)
    assert token not in written.getvalue()
    assert written.getvalue().splitlines() == [
        "Exception on /hooks/… [POST]", "POST /hooks/… could not reach the database"]


def test_a_version_another_scripter_publishes_waits_for_the_makers_approval(
    world: dict[str, Any],
) -> None:
    """A trigger runs as its maker: code another scripter publishes later does not run as
    them from its URL until they approve it (as a schedule's member must)."""
    made = make(world)
    base = f"{triggers_of(world, 'echo')}/{made['id']}"
    script = f"/api/f/lab/scripts/{world['ids']['echo']}"
    sues = call(world, "sue", "PATCH", script,
                json={"source": "result = 'sue was here'", "published": True})
    assert sues.status_code == 200, sues.text
    refused = hook(world, made["url"], json={})
    assert refused.status_code == 409, refused.text
    assert "the maker must approve it in the script's Triggers panel" in refused.text
    # The caller is anonymous: the answer names neither the member nor the script.
    assert "Sam" not in refused.text and "Echo" not in refused.text
    shown = call(world, "sam", "GET", triggers_of(world, "echo")).json()[0]
    assert (shown["approved_version"], shown["version_to_approve"]) == (None, 1)

    for who in ("sue", "ada"):  # only the maker: the runs use their accounts
        answer = call(world, who, "POST", f"{base}/approve")
        assert answer.status_code == 403 and "only they may approve" in answer.text
    approved = call(world, "sam", "POST", f"{base}/approve")
    assert approved.status_code == 200, approved.text
    assert (approved.json()["approved_version"], approved.json()["version_to_approve"]) == (1, None)
    started = hook(world, made["url"], json={})
    assert started.status_code == 202
    assert ended(world, started.json()["run_id"])["result"] == "sue was here"

    # The maker's own new version needs no approval.
    sams = call(world, "sam", "PATCH", script, json={"source": "result = 'sam'", "published": True})
    assert sams.status_code == 200
    assert call(world, "sam", "GET", triggers_of(world, "echo")).json()[0][
        "version_to_approve"] is None
    again = hook(world, made["url"], json={})
    assert again.status_code == 202 and ended(world, again.json()["run_id"])["result"] == "sam"
