"""An outbound call's name lookup ends at the call's deadline (integrations.lookups): a
resolver that does not answer cannot hold a script's call, a webhook attempt, a token
request or Test connection past it, and each says the timeout in words.

A resolver that does not answer cannot be had for real here (no network, and the tests must
not depend on the machine's resolver), so `socket.getaddrinfo` is replaced by a stand-in:
SLOW hangs as a resolver without an answer does (its timeout times its attempts), FAST
answers 127.0.0.1 at once, and every other name goes to the real resolver.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import db, extensions, sandboxes
from app.integrations import lookups, oauth, transport, verification
from app.integrations.call_context import RunContext
from app.integrations.deadlines import Deadline, DeadlinePassed
from app.models import CallLog
from app.models.webhooks import WebhookAttempt
from app.services import webhook_endpoints, webhook_sending
from sandbox import Limits
from tests.conftest import create_facility, create_integration
from tests.webhook_world import attempt, pending_delivery, read_delivery

SLOW = "slow-dns.scriptbox.test"  # .test names never resolve for real (RFC 2606)
FAST = "fast-dns.scriptbox.test"
HANG_S = 10.0  # how long the stand-in keeps SLOW's lookup (a resolver's 5 s x 2 attempts)
# Past its deadline, a call that ends later than this waited for the lookup (HANG_S): far
# below HANG_S less the longest deadline here (2 s), far above what a loaded machine
# stalls for (at 0.5 s, a stall of the calling thread could fail a call that ended in time).
LATE_S = 4.0
WAIT_S = 30.0


class Resolver:
    """The stand-in for socket.getaddrinfo; notes each lookup's name and thread, and how
    many of SLOW's hang at once."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.release = threading.Event()  # set after the test: hanging lookups end
        self.asked: list[tuple[str, str]] = []  # (name, thread)
        self.hanging = 0
        self.most_hanging = 0
        self.all_busy = threading.Event()  # set when WORKERS lookups hang at once
        self._lock = threading.Lock()

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.asked.append((str(host), threading.current_thread().name))
        if host == SLOW:
            with self._lock:
                self.hanging += 1
                self.most_hanging = max(self.most_hanging, self.hanging)
                if self.hanging >= lookups.WORKERS:
                    self.all_busy.set()
            try:
                self.release.wait(HANG_S)
            finally:
                with self._lock:
                    self.hanging -= 1
            host = "127.0.0.1"
        elif host == FAST:
            host = "127.0.0.1"
        return self.real(host, port, *args, **kwargs)

    def names(self) -> list[str]:
        """The names looked up so far, in order."""
        with self._lock:
            return [name for name, _thread in self.asked]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Resolver]:
    """The stand-in resolver, in place for the test; its hanging lookups end afterwards."""
    stand_in = Resolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", stand_in)
    yield stand_in
    stand_in.release.set()


class _Ok(BaseHTTPRequestHandler):
    """Answers "ok" to a GET or POST."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.do_GET()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    """The port of a loopback server that answers "ok"; both names reach it once looked up."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()
    server.server_close()


# -- the transport -------------------------------------------------------------------------


def test_a_lookup_the_resolver_does_not_answer_ends_at_the_deadline(
    app: Flask, resolver: Resolver, port: int
) -> None:
    http = extensions.outbound(app)
    began = time.monotonic()
    with pytest.raises(DeadlinePassed) as ended, Deadline(1):
        http.get(f"http://{SLOW}:{port}/", timeout=WAIT_S)
    assert time.monotonic() - began < 1 + LATE_S
    assert str(ended.value) == "no answer within 1 s"
    cause = ended.value.__cause__
    assert isinstance(cause, requests.ConnectTimeout)  # what urllib3 made of the lookup's
    assert f"looking up {SLOW} took longer than the call's 1 s" in str(cause)
    assert resolver.names() == [SLOW]


def test_a_name_looked_up_in_time_reaches_the_server(
    app: Flask, resolver: Resolver, port: int
) -> None:
    """Under a deadline the lookup is made on a lookup thread; without one, and for an IP
    address under one, on the caller's own (no thread hop)."""
    http = extensions.outbound(app)
    with Deadline(WAIT_S):
        assert http.get(f"http://{FAST}:{port}/a", timeout=WAIT_S).text == "ok"
        assert http.get(f"http://127.0.0.1:{port}/b", timeout=WAIT_S).text == "ok"
    http.close()  # the next lookup is made for a new connection
    assert http.get(f"http://{FAST}:{port}/c", timeout=WAIT_S).text == "ok"
    caller = threading.current_thread().name
    [(fast, thread), (again, own_thread)] = [
        (name, thread) for name, thread in resolver.asked if name != "127.0.0.1"
    ]
    assert (fast, again) == (FAST, FAST)
    assert thread.startswith("outbound-lookup-")
    assert own_thread == caller
    # The address checked for /b, and each address dialled (urllib3 asks for it again).
    assert {thread for name, thread in resolver.asked if name == "127.0.0.1"} == {caller}


def test_a_metadata_name_is_refused_before_any_lookup(resolver: Resolver) -> None:
    with Deadline(1), pytest.raises(transport.PrivateAddress):
        transport.allowed_addresses("metadata.google.internal", 80, ())
    assert resolver.names() == []


def test_past_the_pools_threads_a_lookup_is_made_on_its_callers_thread(
        resolver: Resolver) -> None:
    """As many stuck lookups as lookup threads: each ends at its deadline, and a lookup
    made meanwhile is made on its caller's own thread (as without a deadline), not queued
    behind them to time out: one facility's names whose servers never answer cannot make
    every other new connection time out. Once the resolver answers, the pool takes them."""
    ended: list[tuple[str, float]] = []

    def look_up(name: str) -> None:
        began = time.monotonic()
        try:
            with Deadline(1):
                lookups.getaddrinfo(name, 80)
        except DeadlinePassed as exc:
            ended.append((str(exc.__cause__), time.monotonic() - began))

    callers = [threading.Thread(target=look_up, args=(SLOW,)) for _ in range(lookups.WORKERS)]
    for caller in callers:
        caller.start()
    assert resolver.all_busy.wait(WAIT_S)
    with Deadline(1):
        assert lookups.getaddrinfo(FAST, 80)[0][4][0] == "127.0.0.1"
    assert resolver.asked[-1] == (FAST, threading.current_thread().name)
    for caller in callers:
        caller.join(WAIT_S)
    assert len(ended) == lookups.WORKERS
    assert all(took < 1 + LATE_S for _words, took in ended), ended
    assert {words for words, _took in ended} == {
        f"looking up {SLOW} took longer than the call's 1 s"}
    assert resolver.most_hanging == lookups.WORKERS
    resolver.release.set()  # the stuck ones end, and their threads are free again
    deadline = time.monotonic() + WAIT_S
    while True:
        with Deadline(WAIT_S):
            assert lookups.getaddrinfo(FAST, 80)[0][4][0] == "127.0.0.1"
        if resolver.asked[-1][1].startswith("outbound-lookup-"):
            break
        assert time.monotonic() < deadline, "the pool took no lookup again"
        time.sleep(0.05)
    assert resolver.names().count(SLOW) == lookups.WORKERS


def test_a_forked_process_looks_up_on_threads_of_its_own(resolver: Resolver) -> None:
    """A gunicorn or Celery worker is forked from a parent whose lookup threads it does not
    have: its lookups start threads of its own rather than wait for the parent's."""
    with Deadline(WAIT_S):
        lookups.getaddrinfo(FAST, 80)  # the parent's threads are started
    child = os.fork()
    if child == 0:  # the child: answered, or its deadline passes
        answered = False
        try:
            with Deadline(WAIT_S / 2):
                answered = lookups.getaddrinfo(FAST, 80)[0][4][0] == "127.0.0.1"
        finally:
            os._exit(0 if answered else 1)
    _pid, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# -- script calls --------------------------------------------------------------------------


def _run(app: Flask, source: str, **urls: str) -> Any:
    """Run `source` with an auth-less integration per keyword (key=base URL); the outcome,
    and the error codes and durations of the calls it logged."""
    with app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        for key, url in urls.items():
            create_integration(session, facility=lab, key=key, auth_mode="none", base_url=url,
                               placements=[], credential_fields=[])
        session.commit()
        ctx = RunContext(facility_id=lab.id, user_id=None)
    broker = extensions.build_broker(app, vault=extensions.vault(app))
    outcome = sandboxes.executor(app).run(
        source, on_call=broker.handler(ctx), limits=Limits(wall_time_s=30)
    )
    broker.flush()
    with db.session_factory(app)() as fresh:
        calls = [(log.error_code, log.duration_ms) for log in fresh.scalars(select(CallLog))]
    return outcome, calls


SCRIPT = """
result = []
try:
    integrations.get("faraway", "/slow", timeout=1)
except integrations.IntegrationTimeout as exc:
    result.append([exc.code, str(exc)])
answer = integrations.get("nearby", "/fast", timeout=5)
result.append([answer.status_code, answer.text])
"""


def test_a_scripts_call_whose_lookup_hangs_raises_the_timeout(
    app: Flask, resolver: Resolver, port: int
) -> None:
    outcome, calls = _run(
        app, SCRIPT, faraway=f"http://{SLOW}:{port}", nearby=f"http://{FAST}:{port}"
    )
    assert outcome.status == "succeeded", outcome.error
    assert outcome.result == [
        ["integration_timeout", "Faraway did not answer within 1 s"],
        [200, "ok"],
    ]
    [(error, duration_ms), (none, _fast_ms)] = calls
    assert (error, none) == ("integration_timeout", None)
    assert duration_ms is not None and duration_ms < (1 + LATE_S) * 1000


# -- webhooks ------------------------------------------------------------------------------


def test_a_webhook_attempt_whose_lookup_hangs_ends_at_the_send_deadline(
    app: Flask, session: Session, resolver: Resolver, port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(webhook_sending, "SEND_TIMEOUT_S", 2.0)
    delivery_id = pending_delivery(app, session, f"http://{SLOW}:{port}/hook")
    assert attempt(app, delivery_id) == "pending"
    found = read_delivery(app, delivery_id)
    assert (found.shown_status, found.attempts, found.response_code) == ("retrying", 1, None)
    assert found.last_error == f"{SLOW} did not answer within 2 seconds"
    with db.session_factory(app)() as fresh:
        [tried] = fresh.scalars(select(WebhookAttempt))
        assert tried.duration_ms is not None and tried.duration_ms < (2 + LATE_S) * 1000



def test_a_webhook_url_whose_lookup_hangs_is_kept_after_the_forms_deadline(
    app: Flask, session: Session, resolver: Resolver, port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Registering an endpoint checks where its URL's name points; a resolver that does not
    answer holds the form only URL_LOOKUP_S, and the URL is kept as not resolvable yet (each
    delivery looks it up again), as a name that does not resolve at all is."""
    monkeypatch.setattr(webhook_endpoints, "URL_LOOKUP_S", 1.0)
    facility = create_facility(session)
    began = time.monotonic()
    endpoint, _secret = webhook_endpoints.register(
        session, facility_id=facility.id, url=f"https://{SLOW}:{port}/hook",
        events=["run.finished"], created_by=None, vault=extensions.vault(app), allow=(),
    )
    assert time.monotonic() - began < 1 + LATE_S
    assert endpoint.url == f"https://{SLOW}:{port}/hook"
    assert resolver.names() == [SLOW]

# -- OAuth token endpoints and Test connection ---------------------------------------------


def test_a_token_request_whose_lookup_hangs_ends_at_its_timeout(
    app: Flask, resolver: Resolver, port: int
) -> None:
    base = f"https://{SLOW}:{port}"  # https: oauthlib refuses plain http to a name
    settings = oauth.OAuthSettings(
        authorization_url=f"{base}/authorize", token_url=f"{base}/token",
        revoke_url=f"{base}/revoke", scopes=(), scope_separator=" ", pkce=False,
        token_request_method="POST", token_auth_method="client_secret_post",
        authorization_params={},
    )
    http = extensions.outbound(app)
    for call, endpoint in (("refresh", "token"), ("revoke", "revocation")):
        began = time.monotonic()
        with pytest.raises(oauth.OAuthProviderError) as refused:
            if call == "refresh":
                oauth.refresh_token(settings, client_id="c", client_secret="s",
                                    refresh_token="r", http=http, timeout=1.0)
            else:
                oauth.revoke(settings, client_id="c", client_secret="s", token="t",
                             token_type_hint="refresh_token", http=http, timeout=1.0)
        assert time.monotonic() - began < 1 + LATE_S, call
        assert refused.value.error == "temporarily_unavailable"
        assert refused.value.description == f"the {endpoint} endpoint did not answer within 1 s"


def test_a_credentials_check_whose_lookup_hangs_ends_at_its_deadline(
    app: Flask, session: Session, resolver: Resolver, port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(verification, "VERIFY_TIMEOUT_S", 1.0)
    lab = create_facility(session, slug="lab")
    integration = create_integration(session, facility=lab, key="faraway",
                                     base_url=f"http://{SLOW}:{port}",
                                     verify={"method": "GET", "path": "/me"})
    session.commit()
    began = time.monotonic()
    verdict = verification.verify_credentials(
        integration, creds={"api_key": "k"}, parameters={}, vault=extensions.vault(app),
        http=extensions.outbound(app),
    )
    assert time.monotonic() - began < 1 + LATE_S
    assert verdict is not None
    assert (verdict.ok, verdict.message) == (False, "Faraway did not answer within 1 s")
