"""The broker behind integrations.request, with real sandbox runs and a real loopback API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import db, extensions, sandboxes
from app.integrations.call_context import GrantRequest, RunContext
from app.models import Account, CallLog, Integration
from app.models._types import utcnow
from app.services import connections, integrations_admin, oauth_sign_in
from app.testing import signed_in_session
from sandbox import HostCallError, Limits
from tests.app.integrations.conftest import (
    API_KEY,
    API_SECRET,
    BASIC_PASSWORD,
    BASIC_USER,
    FRESHDESK_KEY,
    PLAIN_KEY,
    REDIRECT,
    RealProvider,
    authorize,
    oauth_integration,
)
from tests.conftest import add_member, create_facility, create_user

ECHO = """
resp = integrations.request(input["service"], input.get("method", "GET"),
                            input.get("path", "/echo"),
                            params=input.get("params"), headers=input.get("headers"),
                            account=input.get("account"), json=input.get("json"))
result = {"status": resp.status, "body": resp.json() if resp.text.startswith("{") else resp.text,
          "headers": dict(resp.headers)}
"""


@pytest.fixture
def sent(app: Flask) -> Iterator[list[requests.PreparedRequest]]:
    """Every request the app's outbound transport sent: what reached the upstream, which
    the script itself no longer sees (echoed secrets come back redacted)."""
    seen: list[requests.PreparedRequest] = []

    def record(response: requests.Response, **_: Any) -> None:
        seen.append(response.request)

    hooks = extensions.outbound(app).hooks["response"]
    hooks.append(record)
    yield seen
    hooks.remove(record)


@pytest.fixture
def world(app: Flask, session: Session, provider: RealProvider) -> dict[str, Any]:
    lab, other = create_facility(session, slug="lab"), create_facility(session, slug="other")
    ada, bob = create_user(session), create_user(session, email="bob@example.com")
    add_member(session, user=ada, facility=lab, role="admin")
    add_member(session, user=bob, facility=other, role="admin")
    keyapi = f"{provider.url}/keyapi"

    def make(key: str, **fields: Any) -> Integration:
        values = {
            "key": key,
            "name": key.title(),
            "base_url": keyapi,
            **fields,
        }
        return integrations_admin.create_custom(
            session, facility=fields.pop("facility", lab), fields=values
        )

    make(
        "headerkey",
        auth_mode="api_key",
        credential_fields=["api_key"],
        placements=[{"location": "header", "name": "X-API-Key", "template": "{api_key}"}],
        default_headers={"X-Client": "scriptbox"},
        default_query={"v": "2"},
    )
    make(
        "querykey",
        auth_mode="api_key",
        credential_fields=["api_key"],
        placements=[{"location": "query", "name": "api_key", "template": "{api_key}"}],
    )
    make(
        "keysecret",
        auth_mode="api_key_secret",
        credential_fields=["api_key", "api_secret"],
        placements=[
            {"location": "header", "name": "X-API-Key", "template": "{api_key}"},
            {"location": "header", "name": "X-API-Secret", "template": "{api_secret}"},
        ],
    )
    make(
        "basic",
        auth_mode="basic",
        credential_fields=["username", "password"],
        placements=[
            {"location": "basic", "template": "{username}", "password_template": "{password}"}
        ],
    )
    make(
        "keybasic",
        auth_mode="api_key",
        credential_fields=["api_key"],
        placements=[{"location": "basic", "template": "{api_key}", "password_template": "X"}],
    )
    make(
        "paramkey",
        auth_mode="api_key",
        credential_fields=["api_key"],
        base_url=f"{provider.url}/{{area}}",
        parameters=[{"name": "area", "label": "Area", "pattern": "^[a-z]+$"}],
        placements=[{"location": "header", "name": "X-API-Key", "template": "{api_key}"}],
    )
    make(
        "otherkey",
        auth_mode="api_key",
        credential_fields=["api_key"],
        facility=other,
        placements=[{"location": "header", "name": "X-API-Key", "template": "{api_key}"}],
    )
    session.commit()
    return {"lab": lab, "other": other, "ada": ada, "bob": bob, "provider": provider}


def connect_key(
    session: Session,
    world: dict[str, Any],
    key: str,
    fields: dict[str, str],
    *,
    owner: str = "master",
    label: str = "",
    parameters: dict[str, str] | None = None,
    facility: str = "lab",
) -> Account:
    integration = session.scalar(
        select(Integration).where(
            Integration.key == key, Integration.facility_id == world[facility].id
        )
    )
    account = connections.connect_with_credentials(
        session,
        integration=integration,
        owner=owner,
        user_id=world["ada"].id if owner == "user" else None,
        label=label,
        fields=fields,
        parameters=parameters or {},
        vault=extensions.vault(),
    )
    session.commit()
    return account


def run(
    app: Flask,
    world: dict[str, Any],
    source: str = ECHO,
    run_input: Any = None,
    *,
    user: str = "ada",
    facility: str = "lab",
    grant_hook: Any = None,
    limits: Limits | None = None,
) -> Any:
    kwargs = {"grant_hook": grant_hook} if grant_hook else {}
    broker = extensions.build_broker(app, vault=extensions.vault(app), **kwargs)
    ctx = RunContext(facility_id=world[facility].id, user_id=world[user].id, run_id=None)
    outcome = sandboxes.executor(app).run(
        source,
        input=run_input,
        on_call=broker.handler(ctx),
        limits=limits or Limits(wall_time_s=20),
    )
    broker.flush()  # the call log is written off the calls' path
    return outcome


@pytest.mark.parametrize(
    ("service", "fields", "expect"),
    [
        ("headerkey", {"api_key": PLAIN_KEY}, {"x-api-key": PLAIN_KEY, "x-client": "scriptbox"}),
        (
            "keysecret",
            {"api_key": API_KEY, "api_secret": API_SECRET},
            {"x-api-key": API_KEY, "x-api-secret": API_SECRET},
        ),
        ("basic", {"username": BASIC_USER, "password": BASIC_PASSWORD}, {}),
        ("keybasic", {"api_key": FRESHDESK_KEY}, {}),
    ],
)
def test_credentials_are_injected_by_placement(
    app: Flask,
    session: Session,
    world: dict[str, Any],
    sent: list[requests.PreparedRequest],
    service: str,
    fields: dict[str, str],
    expect: dict[str, str],
) -> None:
    connect_key(session, world, service, fields)
    outcome = run(app, world, run_input={"service": service})
    assert outcome.ok, outcome.error
    assert outcome.result["status"] == 200  # the API checked the credential
    for name, value in expect.items():
        assert sent[-1].headers[name] == value
    if service == "headerkey":
        assert outcome.result["body"]["args"] == {"v": "2"}


def test_query_placement_and_path_parameters(
    app: Flask, session: Session, world: dict[str, Any]
) -> None:
    connect_key(session, world, "querykey", {"api_key": PLAIN_KEY})
    outcome = run(app, world, run_input={"service": "querykey", "params": {"page": 2}})
    assert outcome.result["status"] == 200
    assert outcome.result["body"]["args"] == {"page": "2", "api_key": "[redacted]"}
    connect_key(session, world, "paramkey", {"api_key": PLAIN_KEY}, parameters={"area": "keyapi"})
    outcome = run(app, world, run_input={"service": "paramkey"})
    assert outcome.result["status"] == 200
    assert outcome.result["body"]["path"].endswith("/keyapi/echo")


def test_bad_parameter_values_are_refused_when_connecting(
    session: Session, world: dict[str, Any]
) -> None:
    from app.errors import ValidationError

    with pytest.raises(ValidationError, match="not allowed"):
        connect_key(
            session, world, "paramkey", {"api_key": PLAIN_KEY}, parameters={"area": "evil.com/x"}
        )


def test_wrong_credentials_give_the_services_401(
    app: Flask, session: Session, world: dict[str, Any]
) -> None:
    connect_key(session, world, "headerkey", {"api_key": "wrong"})
    outcome = run(app, world, run_input={"service": "headerkey"})
    assert outcome.ok and outcome.result["status"] == 401


def _hook_recorder(answer: Any) -> tuple[list[GrantRequest], Any]:
    asked: list[GrantRequest] = []

    def hook(request: GrantRequest) -> int:
        asked.append(request)
        return answer(request)

    return asked, hook


def test_account_resolution(
    app: Flask, session: Session, world: dict[str, Any], sent: list[requests.PreparedRequest]
) -> None:
    connect_key(session, world, "headerkey", {"api_key": "own-key"}, owner="user")
    connect_key(session, world, "headerkey", {"api_key": "work-key"}, owner="user", label="work")
    source = """
seen = {}
for account in [None, "user", "work"]:
    seen[str(account)] = integrations.get("headerkey", "/echo", account=account).status
try:
    integrations.get("headerkey", "/echo", account="master")
except integrations.NoIntegrationGrant as refused:
    seen["master"] = refused.reason
result = seen
"""
    outcome = run(app, world, source)
    assert outcome.result == {"None": 200, "user": 200, "work": 200, "master": "no_master_account"}
    assert [r.headers["X-API-Key"] for r in sent] == ["own-key", "own-key", "work-key"]
    connect_key(session, world, "headerkey", {"api_key": "master-key"})
    sent.clear()
    outcome = run(app, world, source)
    # The master account is now the default; "user" still means the user's own.
    assert outcome.result == {"None": 200, "user": 200, "work": 200}
    keys = [r.headers["X-API-Key"] for r in sent]
    assert keys == ["master-key", "own-key", "work-key", "master-key"]


def test_missing_accounts_ask_the_grant_hook(
    app: Flask, session: Session, world: dict[str, Any]
) -> None:
    def grant(request: GrantRequest) -> int:
        return connect_key(
            session, world, "headerkey", {"api_key": PLAIN_KEY}, owner="user", label=request.label
        ).id

    asked, hook = _hook_recorder(grant)
    outcome = run(
        app,
        world,
        'result = integrations.get("headerkey", "/echo", account="ci").status',
        grant_hook=hook,
    )
    assert outcome.result == 200
    assert [(r.integration_key, r.label, r.reason) for r in asked] == [
        ("headerkey", "ci", "missing")
    ]


def test_a_refusing_hook_reaches_the_script_and_the_default_is_not_interactive(
    app: Flask, world: dict[str, Any]
) -> None:
    def refuse(request: GrantRequest) -> int:
        raise HostCallError("no_integration_grant", "declined", reason="refused")

    source = """
try:
    integrations.require("headerkey")
except integrations.NoIntegrationGrant as e:
    result = e.reason
"""
    assert run(app, world, source, grant_hook=_hook_recorder(refuse)[1]).result == "refused"
    assert run(app, world, source).result == "not_interactive"


def test_needs_reauth_accounts_prompt_again(
    app: Flask, session: Session, world: dict[str, Any]
) -> None:
    account = connect_key(session, world, "headerkey", {"api_key": PLAIN_KEY}, owner="user")
    account.status = "needs_reauth"
    session.commit()

    def grant(request: GrantRequest) -> int:
        return connect_key(session, world, "headerkey", {"api_key": PLAIN_KEY}, owner="user").id

    asked, hook = _hook_recorder(grant)
    outcome = run(
        app, world, 'result = integrations.get("headerkey", "/echo").status', grant_hook=hook
    )
    assert outcome.result == 200 and [r.reason for r in asked] == ["needs_reauth"]


REFUSED_PATHS = [
    ("https://evil.example/steal", "outside the integration's origins"),
    ("//evil.example/steal", "relative"),
    ("http://user@127.0.0.1/x", "user information"),
    ("/../../etc/passwd", "leaves the integration's base path"),
    ("/%2e%2e/%2e%2e/admin", "encoded"),
    ("/a%2Fb", "encoded"),
    ("/echo\r\nX-Injected: 1", "line break"),
    ("/echo\x00", "NUL"),
]


@pytest.mark.parametrize(("path", "message"), REFUSED_PATHS)
def test_destinations_outside_the_integration_are_refused(
    app: Flask, session: Session, world: dict[str, Any], path: str, message: str
) -> None:
    connect_key(session, world, "headerkey", {"api_key": PLAIN_KEY})
    outcome = run(app, world, run_input={"service": "headerkey", "path": path})
    assert outcome.error.code == "forbidden_destination"
    assert message in outcome.error.message


@pytest.mark.parametrize("params", ["[1]", "[('a', 1, 2)]", "[('a',)]", "['ab']"])
def test_params_that_are_not_pairs_are_refused_in_words(
    app: Flask, session: Session, world: dict[str, Any], params: str
) -> None:
    # They raised TypeError or ValueError inside the host: the run failed "internal_error".
    connect_key(session, world, "headerkey", {"api_key": PLAIN_KEY})
    source = f"""
try:
    integrations.get("headerkey", "/echo", params={params})
    result = "sent"
except integrations.IntegrationError as refused:
    result = [refused.code, str(refused)]
"""
    outcome = run(app, world, source)
    assert outcome.result == [
        "forbidden_destination", "params must be a dict or a list of [name, value] pairs"
    ], outcome


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": "mine"},
        {"x-api-key": "mine"},
        {"Authorization": "Bearer x"},
        {"Cookie": "a=b"},
        {"X-Ok": "a\r\nX-Evil: 1"},
    ],
)
def test_scripts_cannot_set_the_credential_or_inject_headers(
    app: Flask, session: Session, world: dict[str, Any], headers: dict[str, str]
) -> None:
    connect_key(session, world, "headerkey", {"api_key": PLAIN_KEY})
    outcome = run(app, world, run_input={"service": "headerkey", "headers": headers})
    assert outcome.error.code == "forbidden_destination"


def test_credential_query_names_are_guarded(
    app: Flask, session: Session, world: dict[str, Any]
) -> None:
    connect_key(session, world, "querykey", {"api_key": PLAIN_KEY})
    outcome = run(app, world, run_input={"service": "querykey", "params": {"api_key": "mine"}})
    assert outcome.error.code == "forbidden_destination"


def test_redirects_are_followed_only_on_the_integrations_hosts(
    app: Flask, session: Session, world: dict[str, Any]
) -> None:
    connect_key(session, world, "headerkey", {"api_key": PLAIN_KEY})
    base = world["provider"].url
    same = run(
        app,
        world,
        run_input={
            "service": "headerkey",
            "path": "/redirect",
            "params": {"to": f"{base}/keyapi/echo"},
        },
    )
    assert same.ok and same.result["status"] == 200
    away = run(
        app,
        world,
        run_input={
            "service": "headerkey",
            "path": "/redirect",
            "params": {"to": "https://evil.example/x"},
        },
    )
    assert away.error.code == "forbidden_destination"


def test_hop_by_hop_and_cookie_headers_never_reach_the_script(
    app: Flask, session: Session, world: dict[str, Any]
) -> None:
    connect_key(session, world, "headerkey", {"api_key": PLAIN_KEY})
    outcome = run(
        app,
        world,
        run_input={"service": "headerkey", "headers": {"Connection": "close", "TE": "trailers"}},
    )
    assert outcome.ok
    sent = outcome.result["body"]["headers"]
    assert "te" not in sent
    received = {name.lower() for name in outcome.result["headers"]}
    assert not received & {"connection", "transfer-encoding", "keep-alive", "set-cookie"}


def test_limits_on_answers(app: Flask, session: Session, world: dict[str, Any]) -> None:
    connect_key(session, world, "headerkey", {"api_key": PLAIN_KEY})
    app.config["CALL_MAX_RESPONSE_BYTES"] = 1000
    big = run(
        app, world, run_input={"service": "headerkey", "path": "/big", "params": {"bytes": 5000}}
    )
    assert big.error.code == "integration_unavailable" and "larger than 1000" in big.error.message
    slow = run(
        app, world, 'integrations.get("headerkey", "/slow", params={"seconds": 3}, timeout=0.5)'
    )
    assert slow.error.code == "integration_timeout"
    five = run(app, world, run_input={"service": "headerkey", "path": "/status/503"})
    assert five.ok and five.result["status"] == 503  # returned, not raised


def test_429_waits_when_it_fits_and_raises_when_not(
    app: Flask, session: Session, world: dict[str, Any]
) -> None:
    connect_key(session, world, "headerkey", {"api_key": PLAIN_KEY})
    fits = run(
        app,
        world,
        'result = integrations.get("headerkey", "/ratelimit", params={"retry_after": 1}).status',
    )
    assert fits.result == 200
    source = """
try:
    integrations.get("headerkey", "/ratelimit", params={"retry_after": 120})
except integrations.RateLimited as limited:
    result = limited.retry_after
"""
    world["provider"].state.reset()
    assert run(app, world, source).result == 120


def _oauth_account(session: Session, world: dict[str, Any]) -> Account:
    integration = oauth_integration(session, world["lab"], world["provider"])
    code, state, _ = authorize(
        session, integration, user_id=world["ada"].id, purpose="master", binding="b"
    )
    account, _ = oauth_sign_in.complete_authorization(
        session,
        state=state,
        code=code,
        error=None,
        session_binding="b",
        redirect_uri=REDIRECT,
        vault=extensions.vault(),
        http=extensions.outbound(),
    )
    session.commit()
    return account


def test_a_401_refreshes_and_retries_once(
    app: Flask, session: Session, world: dict[str, Any]
) -> None:
    _oauth_account(session, world)
    world["provider"].state.expire_access_tokens()  # the API now answers 401
    outcome = run(app, world, 'result = integrations.get("demo", "/me").json()["username"]')
    assert outcome.result == "alice"
    assert world["provider"].stats["refreshes"] == 1


@pytest.mark.parametrize("found_by", ["a 401", "its expiry"])
def test_a_master_whose_refresh_is_refused_asks_in_the_masters_words(
    app: Flask, session: Session, world: dict[str, Any], found_by: str
) -> None:
    # A default call on the master account found it could not be refreshed (invalid_grant):
    # the member was asked to sign in "again" (needs_reauth) to an account they never had.
    account = _oauth_account(session, world)
    if found_by == "its expiry":
        account.token_expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
    world["provider"].state.expire_access_tokens()
    world["provider"].state.revoke_all_refresh_tokens()

    def refuse(request: GrantRequest) -> int:
        raise HostCallError("no_integration_grant", "declined", reason="refused")

    asked, hook = _hook_recorder(refuse)
    run(app, world, 'result = integrations.get("demo", "/me").status', grant_hook=hook)
    assert [(r.integration_key, r.reason, r.takes_master) for r in asked] == [
        ("demo", "master_needs_reauth", True)
    ]


def test_fifty_concurrent_calls_on_an_expired_token_refresh_once(
    app: Flask, session: Session, world: dict[str, Any]
) -> None:
    account = _oauth_account(session, world)
    account.token_issued_at = utcnow() - timedelta(hours=2)
    account.token_expires_at = utcnow() - timedelta(seconds=1)
    session.commit()
    world["provider"].state.expire_access_tokens()
    outcomes: list[Any] = []
    barrier = threading.Barrier(50)

    def one() -> None:
        barrier.wait()
        outcomes.append(run(app, world, 'result = integrations.get("demo", "/me").status'))

    threads = [threading.Thread(target=one) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [o.result for o in outcomes] == [200] * 50, [o.error for o in outcomes if not o.ok]
    assert world["provider"].stats["refreshes"] == 1


def test_the_call_log_records_every_call_without_secrets(
    app: Flask, session: Session, world: dict[str, Any]
) -> None:
    connect_key(session, world, "querykey", {"api_key": PLAIN_KEY})
    run(app, world, run_input={"service": "querykey", "params": {"q": "private words"}})
    run(app, world, run_input={"service": "querykey", "path": "https://evil.example/"})
    rows = session.scalars(select(CallLog).order_by(CallLog.id)).all()
    assert [(r.integration_key, r.account_kind, r.status, r.error_code) for r in rows] == [
        ("querykey", "master", 200, None),
        ("querykey", "master", None, "forbidden_destination"),
    ]
    assert rows[0].path.endswith("/keyapi/echo?q=&api_key=")
    assert "private words" not in rows[0].path and PLAIN_KEY not in repr([r.path for r in rows])


def test_a_call_refused_before_sending_logs_the_full_url_it_asked_for(
    app: Flask, session: Session, world: dict[str, Any]
) -> None:
    # Before: a refused call's row held the script's relative path ("/echo/deep?token="),
    # a sent call's the full URL, in one Path column.
    keyapi = f"{world['provider'].url}/keyapi"
    source = """
for service, path in [("headerkey", "/echo/deep?token=secret"), ("paramkey", "/echo?x=1"),
                      ("nope", "/x")]:
    try:
        integrations.get(service, path, params={"q": "private words"})
    except integrations.IntegrationError:
        pass
"""
    assert run(app, world, source).ok
    world["lab"].monthly_call_quota = 0
    session.commit()
    run(app, world, 'integrations.get("headerkey", "echo", params={"page": 2})')
    rows = session.scalars(select(CallLog).order_by(CallLog.id)).all()
    assert [(r.error_code, r.path) for r in rows] == [
        # Under the integration's base URL, query values dropped, as for sent calls.
        ("no_integration_grant", f"{keyapi}/echo/deep?token=&q="),
        # A base URL that needs an account's {area}: the path as the script wrote it.
        ("no_integration_grant", "/echo?x="),
        ("unknown_integration", "/x"),
        ("quota_exceeded", f"{keyapi}/echo?page="),
    ]


def test_a_call_of_a_switched_off_integration_logs_the_full_url_it_asked_for(
    app: Flask, session: Session, world: dict[str, Any]
) -> None:
    # Its row held the path as the script wrote it ("echo"), where every other call refused
    # before it was sent reads with the URL under the integration's base URL.
    connect_key(session, world, "headerkey", {"api_key": PLAIN_KEY})
    integration = session.scalar(select(Integration).where(
        Integration.key == "headerkey", Integration.facility_id == world["lab"].id))
    assert integration is not None
    integration.enabled = False
    session.commit()
    outcome = run(app, world, 'integrations.get("headerkey", "echo", params={"page": 2})')
    assert outcome.error.code == "integration_unavailable"
    rows = session.scalars(select(CallLog).order_by(CallLog.id)).all()
    assert [(r.integration_key, r.error_code, r.path) for r in rows] == [
        ("headerkey", "integration_unavailable", f"{world['provider'].url}/keyapi/echo?page="),
    ]
    assert rows[0].integration_id is None  # sent nothing: never usage


def test_a_facility_cannot_reach_another_facilitys_integrations(
    app: Flask, session: Session, world: dict[str, Any]
) -> None:
    connect_key(session, world, "otherkey", {"api_key": PLAIN_KEY}, facility="other")
    outcome = run(app, world, run_input={"service": "otherkey"})
    assert outcome.error.code == "unknown_integration"
    available = run(app, world, "result = [i['key'] for i in integrations.available()]").result
    assert "otherkey" not in available and "headerkey" in available


@pytest.mark.sqlite_only  # reads the database file
def test_no_secret_is_stored_or_shown_anywhere(
    app: Flask,
    session: Session,
    world: dict[str, Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.app.integrations.conftest import SECRETS

    account = _oauth_account(session, world)
    tokens = extensions.vault().decrypt_json(account.credentials_enc)
    connect_key(session, world, "keysecret", {"api_key": API_KEY, "api_secret": API_SECRET})
    connect_key(session, world, "basic", {"username": BASIC_USER, "password": BASIC_PASSWORD})
    script = run(
        app,
        world,
        """
out = [integrations.get("demo", "/me").text, integrations.get("keysecret", "/me").status,
       integrations.get("basic", "/me").status]
print(out)
result = out
""",
    )
    assert script.ok, script.error
    secrets = [
        tokens["access_token"],
        tokens["refresh_token"],
        SECRETS["basic-client"],
        API_SECRET,
        BASIC_PASSWORD,
    ]
    db.session.remove()
    raw = Path(app.config["DATABASE_URL"].removeprefix("sqlite:///")).read_bytes()
    for wal in Path(tmp_path).glob("*.sqlite-wal"):
        raw += wal.read_bytes()
    client = app.test_client()
    with client.session_transaction() as sess:
        sess.update({**signed_in_session(app, world["ada"].id), "csrf": "t"})
    answers = "".join(
        client.get(path).get_data(as_text=True)
        for path in (
            "/api/f/lab/integrations",
            "/api/f/lab/integrations/demo",
            "/api/f/lab/calls",
            "/api/f/lab/accounts",
        )
    )
    shown = repr(script.to_dict()) + answers + caplog.text
    for secret in secrets:
        assert secret.encode() not in raw, secret
        assert secret not in shown, secret


def test_the_monthly_quota_refuses_calls_past_it(
    app: Flask, session: Session, world: dict[str, Any]
) -> None:
    connect_key(session, world, "headerkey", {"api_key": PLAIN_KEY})
    world["lab"].monthly_call_quota = 2
    session.commit()
    source = """
codes = []
for _ in range(3):
    try:
        codes.append(integrations.get("headerkey", "/echo").status)
    except integrations.QuotaExceeded as over:
        codes.append(over.code)
        said = str(over)
result = [codes, said]
"""
    codes, said = run(app, world, source).result
    assert codes == [200, 200, "quota_exceeded"]
    assert said.endswith("an admin can raise it under Management → Usage and quota"), said
    from app.services.usage import monthly_usage

    # The refused call is logged, not counted: usage stays at the quota, and raising the
    # quota by one gives back exactly one call.
    usage = monthly_usage(session, world["lab"])
    assert usage["calls"] == {"headerkey": 2} and usage["total"] == 2 and usage["quota"] == 2
    logged = session.scalars(select(CallLog.error_code).order_by(CallLog.id)).all()
    assert logged == [None, None, "quota_exceeded"]
    world["lab"].monthly_call_quota = 3
    session.commit()
    assert run(app, world, source).result[0] == [200, "quota_exceeded", "quota_exceeded"]
    assert monthly_usage(session, world["lab"])["total"] == 3


# Calls refused before they went out: logged with their error, never usage.
NOT_SENT = """
codes = []
for service, path in [("nope", "/x"), ("headerkey", "https://evil.example/x"),
                      ("querykey", "/echo"), ("headerkey", "//evil.example/x")]:
    try:
        integrations.get(service, path)
    except integrations.IntegrationError as refused:
        codes.append(refused.code)
try:
    integrations.request("headerkey", "BREW", "/echo")
except integrations.IntegrationError as refused:
    codes.append(refused.code)
for path in ["/status/500", "/echo", "/status/204", "/echo"]:
    try:
        codes.append(integrations.get("headerkey", path).status)
    except integrations.IntegrationError as refused:
        codes.append(refused.code)
result = codes
"""


def test_only_calls_sent_to_a_service_count_as_usage_and_toward_the_quota(
    app: Flask, session: Session, world: dict[str, Any]
) -> None:
    from app.services.usage import monthly_usage, usage_by_month

    connect_key(session, world, "headerkey", {"api_key": PLAIN_KEY})  # querykey has none
    world["lab"].monthly_call_quota = 3
    session.commit()
    assert run(app, world, NOT_SENT).result == [
        "unknown_integration", "forbidden_destination", "no_integration_grant",
        "forbidden_destination", "invalid_request", 500, 200, 204, "quota_exceeded",
    ]
    # Every call is in the call log with its outcome; only the three sent ones (a 500 from
    # the service too) are usage, and a key that does not exist is no integration's.
    logged = session.execute(select(CallLog.integration_key, CallLog.status,
                                    CallLog.error_code).order_by(CallLog.id)).all()
    assert [(status, error) for _key, status, error in logged] == [
        (None, "unknown_integration"), (None, "forbidden_destination"),
        (None, "no_integration_grant"), (None, "forbidden_destination"),
        (None, "invalid_request"), (500, None), (200, None), (204, None),
        (None, "quota_exceeded"),
    ]
    usage = monthly_usage(session, world["lab"])
    assert usage["calls"] == {"headerkey": 3} and usage["total"] == 3
    assert usage_by_month(session, world["lab"], months=1)[-1]["calls"] == {"headerkey": 3}
    # Without a quota the same calls count the same way.
    world["lab"].monthly_call_quota = None
    session.commit()
    run(app, world, NOT_SENT)
    assert monthly_usage(session, world["lab"])["calls"] == {"headerkey": 7}


def test_an_answered_429_counts_as_usage(
    app: Flask, session: Session, world: dict[str, Any]
) -> None:
    from app.services.usage import monthly_usage

    connect_key(session, world, "headerkey", {"api_key": PLAIN_KEY})
    world["provider"].state.reset()  # its first call is the one rate limited
    source = """
try:
    integrations.get("headerkey", "/ratelimit", params={"retry_after": 120})
except integrations.RateLimited as limited:
    result = limited.code
"""
    assert run(app, world, source).result == "rate_limited"
    row = session.scalars(select(CallLog)).one()
    assert (row.status, row.error_code) == (429, "rate_limited")
    assert monthly_usage(session, world["lab"])["calls"] == {"headerkey": 1}
