"""Outbound calls end at their deadline even when the peer trickles (deadlines.Deadline): a
loopback peer that sends its status line, headers or body a byte at a time, each byte well
within any per-read timeout, is cut off; the webhook attempt and the script's call end
with the timeout in words while the trickle still had most of its bytes to send.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import db, extensions, sandboxes
from app.integrations import oauth, verification
from app.integrations.call_context import RunContext
from app.integrations.deadlines import Deadline
from app.models import CallLog
from app.services import webhook_sending
from sandbox import Limits
from sandbox.limits import ran_too_long
from tests.conftest import create_facility, create_integration
from tests.webhook_world import attempt, pending_delivery, read_delivery

WAIT_S = 60.0
DRIP_S = 0.3
DRIPS = 200  # a minute of trickling: far past every deadline below
STATUS_LINE = b"HTTP/1.1 200 OK\r\n"
BODY_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n"


class Trickler:
    """A loopback peer: to each connection it sends `head`, then one byte every DRIP_S, up
    to DRIPS bytes. `ended` is set when it stops, `hung_up` too when the client closed the
    connection first, and `dripped` says how many bytes had gone by then."""

    def __init__(self, head: bytes, drip: bytes) -> None:
        self.head, self.drip = head, drip
        self.ended = threading.Event()
        self.hung_up = threading.Event()
        self.dripped = 0
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self._server.accept()
        except OSError:
            return  # closed before anyone called
        with conn:
            self._trickle(conn)
        self.ended.set()

    def _trickle(self, conn: socket.socket) -> None:
        conn.settimeout(DRIP_S)
        conn.sendall(self.head)
        for _ in range(DRIPS):
            if self._stop.is_set():
                return
            try:
                if conn.recv(65536) == b"":  # the request is read as it comes; then EOF
                    break
            except TimeoutError:
                pass
            try:
                conn.sendall(self.drip)
            except OSError:
                break
            self.dripped += 1
        else:
            return  # trickled to the end
        self.hung_up.set()

    def close(self) -> None:
        """Stop trickling and listening."""
        self._stop.set()
        self._server.close()
        self._thread.join(WAIT_S)


Start = Callable[[bytes, bytes], Trickler]


@pytest.fixture
def trickler() -> Iterator[Start]:
    """Starts Tricklers (head, drip); each is closed after the test."""
    started: list[Trickler] = []

    def start(head: bytes, drip: bytes) -> Trickler:
        started.append(Trickler(head, drip))
        return started[-1]

    yield start
    for peer in started:
        peer.close()


def _cut_short(peer: Trickler) -> bool:
    """True when the client hung up while the trickle had most of its bytes left."""
    return peer.ended.wait(WAIT_S) and peer.hung_up.is_set() and peer.dripped < DRIPS // 2


# -- the transport -------------------------------------------------------------------------


class _KeepAlive(BaseHTTPRequestHandler):
    """Answers "ok" on a kept-alive connection, noting the client's port of each request."""

    protocol_version = "HTTP/1.1"
    ports: list[int] = []

    def do_GET(self) -> None:
        self.ports.append(self.client_address[1])
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args: Any) -> None:
        pass


def test_a_connection_back_in_the_pool_is_not_cut_when_its_deadline_passes(app: Flask) -> None:
    """The deadline lets go of a connection that goes back to the pool, so its cut (come
    later) cannot end another call made on it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAlive)
    _KeepAlive.ports = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/"
    http = extensions.outbound(app)
    try:
        deadline = Deadline(WAIT_S)
        with deadline:
            assert http.get(url, timeout=WAIT_S).text == "ok"  # read: the connection is back
        deadline.expire()  # the deadline passes (not waited for)
        assert http.get(url, timeout=WAIT_S).text == "ok"
        assert deadline.passed
        assert len(_KeepAlive.ports) == 2 and len(set(_KeepAlive.ports)) == 1  # one connection
    finally:
        server.shutdown()
        server.server_close()


# -- webhooks ------------------------------------------------------------------------------


def test_a_receiver_that_trickles_its_headers_is_cut_off_at_the_send_deadline(
    app: Flask, session: Session, trickler: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    peer = trickler(STATUS_LINE, b"X")  # one header byte at a time: the headers never end
    monkeypatch.setattr(webhook_sending, "SEND_TIMEOUT_S", 2.0)
    delivery_id = pending_delivery(app, session, f"{peer.url}/hook")
    assert attempt(app, delivery_id) == "pending"
    found = read_delivery(app, delivery_id)
    assert (found.shown_status, found.attempts, found.response_code) == ("retrying", 1, None)
    assert found.last_error == "127.0.0.1 did not answer within 2 seconds"
    # The attempt returned (its sender thread is free) with the trickle far from its end.
    assert _cut_short(peer)


# -- script calls --------------------------------------------------------------------------

CAUGHT = """
try:
    integrations.get("trickle", "/slow", timeout=1)
except integrations.IntegrationTimeout as exc:
    result = [exc.code, str(exc)]
"""


def _run(app: Flask, peer: Trickler, source: str, *, wall_time_s: float) -> Any:
    """Run `source` against the integration "trickle" at `peer` (no credential); the
    outcome, and the errors of the calls it logged."""
    with app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        create_integration(
            session,
            facility=lab,
            key="trickle",
            auth_mode="none",
            base_url=peer.url,
            placements=[],
            credential_fields=[],
        )
        session.commit()
        ctx = RunContext(facility_id=lab.id, user_id=None)
    broker = extensions.build_broker(app, vault=extensions.vault(app))
    outcome = sandboxes.executor(app).run(
        source, on_call=broker.handler(ctx), limits=Limits(wall_time_s=wall_time_s)
    )
    broker.flush()
    with db.session_factory(app)() as fresh:
        errors = list(fresh.scalars(select(CallLog.error_code)))
    return outcome, errors


def test_a_service_that_trickles_its_headers_raises_the_timeout_in_the_script(
    app: Flask, trickler: Start
) -> None:
    peer = trickler(STATUS_LINE, b"X")
    outcome, errors = _run(app, peer, CAUGHT, wall_time_s=30)
    assert outcome.status == "succeeded", outcome.error
    assert outcome.result == ["integration_timeout", "Trickle did not answer within 1 s"]
    assert errors == ["integration_timeout"]
    assert _cut_short(peer)


def test_a_service_that_trickles_its_body_fails_the_run_with_the_timeout(
    app: Flask, trickler: Start
) -> None:
    peer = trickler(BODY_HEAD, b"x")  # headers at once, then the body a byte at a time
    source = 'integrations.get("trickle", "/big", timeout=1)'
    outcome, errors = _run(app, peer, source, wall_time_s=30)
    assert outcome.status == "failed"
    assert outcome.error.code == "integration_timeout"
    assert outcome.error.message == "Trickle did not send its whole answer within 1 s"
    assert errors == ["integration_timeout"]
    assert _cut_short(peer)


def test_a_trickling_call_ends_with_the_runs_time_limit(app: Flask, trickler: Start) -> None:
    """No call timeout of its own: the call's deadline is the run's, and the run ends there."""
    peer = trickler(BODY_HEAD, b"x")
    outcome, errors = _run(app, peer, 'integrations.get("trickle", "/big")', wall_time_s=3)
    assert outcome.status == "timed_out"
    assert outcome.error.code == "timeout"
    assert outcome.error.message == ran_too_long(3)
    assert errors == ["integration_timeout"]
    assert _cut_short(peer)


# -- OAuth token endpoints -----------------------------------------------------------------


@pytest.mark.parametrize("head", [STATUS_LINE, BODY_HEAD], ids=["headers", "body"])
def test_a_token_endpoint_that_trickles_is_cut_off_at_the_deadline(
    app: Flask, trickler: Start, head: bytes
) -> None:
    """A refresh (a script's call waits for it) and a revocation end at their timeout in
    all, with words saying so, while the trickle had most of its bytes to send."""
    http = extensions.outbound(app)
    for call in ("refresh", "revoke"):
        peer = trickler(head, b"X")
        settings = oauth.OAuthSettings(
            authorization_url=f"{peer.url}/authorize", token_url=f"{peer.url}/token",
            revoke_url=f"{peer.url}/revoke", scopes=(), scope_separator=" ", pkce=False,
            token_request_method="POST", token_auth_method="client_secret_post",
            authorization_params={},
        )
        with pytest.raises(oauth.OAuthProviderError) as refused:
            if call == "refresh":
                oauth.refresh_token(settings, client_id="c", client_secret="s",
                                    refresh_token="r", http=http, timeout=1.0)
            else:
                oauth.revoke(settings, client_id="c", client_secret="s", token="t",
                             token_type_hint="refresh_token", http=http, timeout=1.0)
        assert refused.value.error == "temporarily_unavailable"
        endpoint = "token" if call == "refresh" else "revocation"
        assert refused.value.description == f"the {endpoint} endpoint did not answer within 1 s"
        assert _cut_short(peer), call


def test_a_credentials_check_against_a_trickling_service_ends_at_its_deadline(
    app: Flask, session: Session, trickler: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin's Test connection: "did not answer within 1 s", not a minute's wait."""
    peer = trickler(BODY_HEAD, b"X")
    monkeypatch.setattr(verification, "VERIFY_TIMEOUT_S", 1.0)
    lab = create_facility(session, slug="lab")
    integration = create_integration(session, facility=lab, key="slow", base_url=peer.url,
                                     verify={"method": "GET", "path": "/me"})
    session.commit()
    verdict = verification.verify_credentials(
        integration, creds={"api_key": "k"}, parameters={}, vault=extensions.vault(app),
        http=extensions.outbound(app),
    )
    assert verdict is not None
    assert (verdict.ok, verdict.message) == (False, f"{integration.name} did not answer within 1 s")
    assert _cut_short(peer)
