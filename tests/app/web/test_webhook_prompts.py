"""Issue 12.3, the embedding app's prompts: an API run that needs an account parks and the
app gets `grant.required` with a connect link (completing it resumes the run, refusing it
raises in the script, nobody answering ends the run); an account that becomes
`needs_reauth` is announced once with a link that signs it in again. Real OAuth provider
and a real webhook listener, both on loopback; a plain requests session is the browser.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from sqlalchemy import func, select, update

from app import db, extensions
from app.devprovider import (
    ClientSpec,
    ProviderConfig,
    answer_consent,
    create_provider_app,
    provider_of,
    serve_in_thread,
)
from app.models import (
    Account,
    CallLog,
    Grant,
    Role,
    Script,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.models._types import utcnow
from app.services import integrations_admin, webhooks
from app.services.people import facility_by_slug
from app.testing import LiveServer, WebClient
from tests.conftest import (
    add_member,
    create_facility,
    create_user,
    demo_oauth_fields,
    open_connect_link,
)
from tests.listener import Listener

WAIT_S = 60.0
ASKS = """
try:
    result = integrations.get("demo", "/me"{account}).json()
except integrations.NoIntegrationGrant as refused:
    result = {{"reason": refused.reason, "message": str(refused)}}
"""


@pytest.fixture
def world(live: LiveServer) -> Iterator[dict[str, Any]]:
    """Admin Ada and member Mia (API tokens), an OAuth integration on a loopback provider,
    a published script calling it, and a webhook endpoint for the two prompt events."""
    callback = f"{live.app.config['PUBLIC_URL']}/oauth/callback"
    config = ProviderConfig(clients=[ClientSpec("hook-client", "hook-secret", [callback])])
    listener = Listener().start()
    provider_app = create_provider_app(config)
    with serve_in_thread(provider_app) as provider:
        with live.app.app_context():
            session = db.session()
            lab = create_facility(session, slug="lab")
            ada = create_user(session, email="ada@example.com")
            mia = create_user(session, email="mia@example.com")
            add_member(session, user=ada, facility=lab, role=Role.admin)
            add_member(session, user=mia, facility=lab, role=Role.member)
            integrations_admin.create_custom(
                session,
                facility=lab,
                fields=demo_oauth_fields(
                    provider.url,
                    client_id="hook-client",
                    client_secret="hook-secret",
                    scopes=["read"],
                    allow_private_network=True,
                ),
            )
            script = Script(
                facility_id=lab.id, name="S", source=ASKS.format(account=""), published=True
            )
            session.add(script)
            session.commit()
            ids = {"ada": ada.id, "mia": mia.id, "script": script.id}
        tokens = {
            name: WebClient(live.app, live.url, ids[name])
            .api("POST", "/api/tokens", json={"name": "t"})
            .json()["token"]
            for name in ("ada", "mia")
        }
        world = {"live": live, "ids": ids, "tokens": tokens, "listener": listener}
        world["provider"] = provider_of(provider_app)
        world["provider_url"] = provider.url
        endpoint = _call(
            world,
            "ada",
            "POST",
            "/api/f/lab/webhooks",
            json={"url": listener.url, "events": ["grant.required", "account.needs_reauth"]},
        )
        assert endpoint.status_code == 201, endpoint.text
        world["secret"] = endpoint.json()["secret"]
        # Park at once: the run must come back from the database, not from a live thread.
        extensions.grants(live.app).park_after_s = 0.0
        try:
            yield world
        finally:
            listener.close()


def _call(world: dict[str, Any], who: str, method: str, path: str, **kw: Any) -> requests.Response:
    return requests.request(
        method,
        f"{world['live'].url}{path}",
        headers={"Authorization": f"Bearer {world['tokens'][who]}"},
        timeout=WAIT_S,
        **kw,
    )


def _start(world: dict[str, Any], who: str = "mia", **body: Any) -> str:
    body.setdefault("script_id", world["ids"]["script"])
    answer = _call(world, who, "POST", "/api/f/lab/runs", json={"wait": 0, **body})  # do not wait
    assert answer.status_code in (200, 201), answer.text
    run_id: str = answer.json()["id"]
    return run_id


def _until(world: dict[str, Any], run_id: str, wanted: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while True:
        run: dict[str, Any] = _call(world, "ada", "GET", f"/api/f/lab/runs/{run_id}").json()
        if run["status"] in wanted or time.monotonic() > deadline:
            assert run["status"] in wanted, run
            return run
        time.sleep(0.1)  # polling a condition, not a timed assertion


def _event(world: dict[str, Any], name: str) -> dict[str, Any]:
    """The next delivery, checked to be signed with the endpoint's secret."""
    got = world["listener"].next()
    headers, body = got.headers, got.body
    assert headers["Scriptbox-Event"] == name
    assert webhooks.verify(
        world["secret"], headers["Scriptbox-Timestamp"], body, headers["Scriptbox-Signature"]
    )
    payload: dict[str, Any] = json.loads(body)
    assert payload["event"] == name
    data: dict[str, Any] = payload["data"]
    return data


def _sign_in(world: dict[str, Any], connect_url: str, *, approve: bool) -> requests.Response:
    """A fresh browser opens the link, answers the provider's consent, comes back."""
    live: LiveServer = world["live"]
    browser = requests.Session()
    to_provider = open_connect_link(browser, f"{live.url}{urlsplit(connect_url).path}")
    assert to_provider.status_code == 302, to_provider.text
    back = answer_consent(to_provider.headers["Location"], approve=approve, session=browser)
    return browser.get(
        f"{live.url}/oauth/callback?{urlsplit(back).query}", allow_redirects=False, timeout=WAIT_S
    )


def _deliveries(world: dict[str, Any], event: str) -> int:
    with world["live"].app.app_context():
        count = db.session.scalar(
            select(func.count(WebhookDelivery.id)).where(WebhookDelivery.event == event)
        )
        db.session.remove()
    return int(count or 0)


def test_an_api_run_parks_until_the_user_completes_the_webhooks_link(
    world: dict[str, Any],
) -> None:
    run_id = _start(world)
    data = _event(world, "grant.required")
    assert (data["run_id"], data["user_id"], data["integration"]) == (
        run_id,
        world["ids"]["mia"],
        "demo",
    )
    assert data["owner"] == "user" and data["reason"] == "missing" and data["grant_id"]
    assert _until(world, run_id, {"parked"})["status"] == "parked"
    done = _sign_in(world, data["connect_url"], approve=True)
    assert done.status_code == 200 and "connected" in done.text, done.text
    run = _until(world, run_id, {"succeeded", "failed"})
    assert run["status"] == "succeeded", run
    assert run["result"]["username"] == "alice"  # the provider's consent signed in alice
    with world["live"].app.app_context():
        [account] = db.session.scalars(select(Account)).all()
        assert (account.owner_kind, account.user_id) == ("user", world["ids"]["mia"])


def test_connecting_the_account_in_settings_answers_the_waiting_prompt(
    world: dict[str, Any],
) -> None:
    """The user connects the account from Settings (a signed-in OAuth sign-in of their
    own, not the prompt's link): the run waiting for it went on waiting until its prompt
    expired, and then failed with no_integration_grant."""
    run_id = _start(world)
    _event(world, "grant.required")
    _until(world, run_id, {"parked"})
    mia = WebClient(world["live"].app, world["live"].url, world["ids"]["mia"])
    started = mia.api("POST", "/api/f/lab/integrations/demo/accounts", json={})
    assert started.status_code == 200, started.text
    back = answer_consent(started.json()["authorization_url"], session=mia.http)
    done = mia.http.get(
        f"{world['live'].url}/oauth/callback?{urlsplit(back).query}", timeout=WAIT_S
    )
    assert done.status_code == 200 and "connected" in done.text, done.text
    run = _until(world, run_id, {"succeeded", "failed"})
    assert run["status"] == "succeeded" and run["result"]["username"] == "alice", run


def test_connecting_with_an_authorization_code_answers_the_waiting_prompt(
    world: dict[str, Any],
) -> None:
    """The user's app signs in at the provider itself and hands Scriptbox the code
    (`POST .../accounts/code`): the run waiting for that account went on waiting until its
    prompt expired, and then failed with no_integration_grant."""
    run_id = _start(world)
    _event(world, "grant.required")
    _until(world, run_id, {"parked"})
    redirect = f"{world['live'].app.config['PUBLIC_URL']}/oauth/callback"
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    query = urlencode(
        {
            "response_type": "code",
            "client_id": "hook-client",
            "redirect_uri": redirect,
            "scope": "read",
            "state": "the-apps-own",
            "code_challenge": challenge.decode().rstrip("="),
            "code_challenge_method": "S256",
        }
    )
    back = answer_consent(f"{world['provider_url']}/authorize?{query}")
    code = parse_qs(urlsplit(back).query)["code"][0]
    done = _call(
        world,
        "mia",
        "POST",
        "/api/f/lab/integrations/demo/accounts/code",
        json={"code": code, "redirect_uri": redirect, "code_verifier": verifier},
    )
    assert done.status_code == 201, done.text
    run = _until(world, run_id, {"succeeded", "failed"})
    assert run["status"] == "succeeded" and run["result"]["username"] == "alice", run


def test_refusing_at_the_provider_raises_in_the_script(world: dict[str, Any]) -> None:
    run_id = _start(world)
    data = _event(world, "grant.required")
    _until(world, run_id, {"parked"})
    answer = _sign_in(world, data["connect_url"], approve=False)
    assert answer.status_code == 400 and "declined" in answer.text
    run = _until(world, run_id, {"succeeded", "failed"})
    assert run["status"] == "succeeded", run
    assert run["result"]["reason"] == "refused"
    assert "declined to connect" in run["result"]["message"]


def test_nobody_answering_ends_the_run_with_a_clear_message(world: dict[str, Any]) -> None:
    extensions.grants(world["live"].app).timeout_s = 1.0
    run_id = _start(world, who="ada", source='integrations.get("demo", "/me")')
    assert _event(world, "grant.required")["run_id"] == run_id
    run = _until(world, run_id, {"succeeded", "failed"})
    assert run["error"]["code"] == "no_integration_grant", run
    assert "nobody signed in to Demo OAuth before the prompt expired" in run["error"]["message"]


def test_without_a_grant_required_endpoint_the_run_fails_at_once(
    world: dict[str, Any],
) -> None:
    with world["live"].app.app_context():
        session = db.session()
        session.execute(update(WebhookEndpoint).values(events=["run.finished"]))
        session.commit()
        # What the API does when an endpoint's events change: the cached answer goes.
        webhooks.forget(session, facility_by_slug(session, "lab").id)
        db.session.remove()
    run_id = _start(world)
    run = _until(world, run_id, {"succeeded", "failed"})
    assert run["result"]["reason"] == "not_interactive", run
    assert _deliveries(world, "grant.required") == 0


def _connect(world: dict[str, Any], **body: Any) -> None:
    link = _call(world, "ada", "POST", "/api/f/lab/connect-links", json=body)
    assert link.status_code == 201, link.text
    done = _sign_in(world, link.json()["url"], approve=True)
    assert done.status_code == 200, done.text


def _lose_refresh_token(world: dict[str, Any]) -> None:
    """The provider forgets every refresh token; the stored token is due for a refresh."""
    assert world["provider"].revoke_all_refresh_tokens() >= 1
    with world["live"].app.app_context():
        db.session.execute(update(Account).values(token_expires_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()
        db.session.remove()


def test_a_users_account_that_needs_reauth_is_announced_once(world: dict[str, Any]) -> None:
    _connect(world, integration="demo", user_id=world["ids"]["mia"])
    _lose_refresh_token(world)
    first = _start(world)
    data = _event(world, "account.needs_reauth")
    with world["live"].app.app_context():
        [account] = db.session.scalars(select(Account)).all()
        assert account.status == "needs_reauth"
    assert (data["account_id"], data["integration"], data["owner"], data["user_id"]) == (
        account.id,
        "demo",
        "user",
        world["ids"]["mia"],
    )
    prompt = _event(world, "grant.required")  # the run waits for the account meanwhile
    assert prompt["run_id"] == first and prompt["reason"] == "needs_reauth"
    second = _start(world)  # meets the stale account too: no new transition, same prompt
    _until(world, second, {"parked"})
    assert _deliveries(world, "account.needs_reauth") == 1
    assert _deliveries(world, "grant.required") == 1
    done = _sign_in(world, data["connect_url"], approve=True)
    assert done.status_code == 200 and "connected" in done.text
    for run_id in (first, second):
        run = _until(world, run_id, {"succeeded", "failed"})
        assert run["result"]["username"] == "alice", run
    with world["live"].app.app_context():
        assert db.session.get(Account, account.id).status == "active"  # type: ignore[union-attr]


def test_a_master_account_that_needs_reauth_gets_an_admins_link(world: dict[str, Any]) -> None:
    _connect(world, integration="demo", owner="master")
    _lose_refresh_token(world)
    run_id = _start(world, who="ada", source=ASKS.format(account=', account="master"'))
    data = _event(world, "account.needs_reauth")
    assert (data["owner"], data["user_id"], data["connect_user_id"]) == (
        "master",
        None,
        world["ids"]["ada"],
    )
    run = _until(world, run_id, {"succeeded", "failed"})
    assert run["result"]["reason"] == "master_needs_reauth"  # "master" never prompts
    assert _deliveries(world, "grant.required") == 0
    done = _sign_in(world, data["connect_url"], approve=True)
    assert done.status_code == 200 and "connected" in done.text
    again = _start(world, who="ada", source=ASKS.format(account=', account="master"'))
    assert _until(world, again, {"succeeded", "failed"})["result"]["username"] == "alice"


def _accounts_used(world: dict[str, Any], run_id: str) -> list[str | None]:
    """The account kind each call of the run used (the call log's, method GET)."""
    with world["live"].app.app_context():
        kinds = db.session.scalars(
            select(CallLog.account_kind)
            .where(CallLog.run_id == run_id, CallLog.method == "GET")
            .order_by(CallLog.id)
        ).all()
        db.session.remove()
    return list(kinds)


def _grant_states(world: dict[str, Any]) -> list[str]:
    with world["live"].app.app_context():
        states = db.session.scalars(select(Grant.state).order_by(Grant.created_at)).all()
        db.session.remove()
    return list(states)


def test_an_admin_connecting_the_master_account_answers_a_default_calls_prompt(
    world: dict[str, Any],
) -> None:
    """A call with account=None takes the master account once there is one (DESIGN §3):
    the run waiting for the member's sign-in went on waiting when an admin connected the
    master account, until its prompt expired (no_integration_grant)."""
    run_id = _start(world)
    assert _event(world, "grant.required")["reason"] == "missing"
    _until(world, run_id, {"parked"})
    _connect(world, integration="demo", owner="master")
    run = _until(world, run_id, {"succeeded", "failed"})
    assert run["status"] == "succeeded" and run["result"]["username"] == "alice", run
    assert _accounts_used(world, run_id) == ["master"]
    assert _grant_states(world) == ["granted"]


def test_the_master_account_does_not_answer_a_prompt_for_the_users_own_account(
    world: dict[str, Any],
) -> None:
    """account="user" wants the user's own account even when the facility has a master
    one; a default call that shares its prompt then waits for the user too."""
    default = _start(world, who="ada", source=ASKS.format(account=""))
    prompt = _event(world, "grant.required")
    _until(world, default, {"parked"})
    own = _start(world, who="ada", source=ASKS.format(account=', account="user"'))
    _until(world, own, {"parked"})  # the same prompt: no second webhook
    _connect(world, integration="demo", owner="master")
    later = _start(world)  # a default call now takes the master at once
    assert _until(world, later, {"succeeded", "failed"})["result"]["username"] == "alice"
    assert _accounts_used(world, later) == ["master"]
    for run_id in (default, own):
        assert _call(world, "ada", "GET", f"/api/f/lab/runs/{run_id}").json()["status"] == "parked"
    assert _grant_states(world) == ["pending"]
    done = _sign_in(world, prompt["connect_url"], approve=True)
    assert done.status_code == 200 and "connected" in done.text
    for run_id, used in ((own, "user"), (default, "master")):  # None takes the master now
        run = _until(world, run_id, {"succeeded", "failed"})
        assert run["result"]["username"] == "alice", run
        assert _accounts_used(world, run_id) == [used]
    assert _deliveries(world, "grant.required") == 1


def test_signing_the_master_account_in_again_answers_the_prompt_it_caused(
    world: dict[str, Any],
) -> None:
    """A default call meets a master account that needs_reauth and no account of the
    member's: unlike account="master" it waits (reason master_needs_reauth), and the
    admin signing the master account in again answers it with the master."""
    _connect(world, integration="demo", owner="master")
    with world["live"].app.app_context():
        db.session.execute(update(Account).values(status="needs_reauth"))
        db.session.commit()
        db.session.remove()
    run_id = _start(world)
    assert _event(world, "grant.required")["reason"] == "master_needs_reauth"
    _until(world, run_id, {"parked"})
    _connect(world, integration="demo", owner="master")
    run = _until(world, run_id, {"succeeded", "failed"})
    assert run["status"] == "succeeded" and run["result"]["username"] == "alice", run
    assert _accounts_used(world, run_id) == ["master"]
