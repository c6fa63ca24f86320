"""The server's own outbound calls read at most a capped answer (body_caps.BodyCap): a
loopback peer that floods its answer, declared far over the cap by Content-Length or
chunked without end, is hung up on while it had sent little more than the cap, and the
credentials check, the token calls and the revocation end at once with the size in words.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterator

import pytest
import requests
from flask import Flask
from sqlalchemy.orm import Session
from urllib3.connection import HTTPConnection

from app import extensions
from app.config import parse_network_allow
from app.integrations import body_caps, identity, oauth, verification
from app.integrations.transport import guarded_session
from app.models import Integration
from sandbox import size_in_words
from tests.app.test_outbound_deadline import WAIT_S, Trickler
from tests.conftest import create_facility, create_integration

CAP = body_caps.MIB  # the cap of every call here (checked below, so the bounds mean it)
BUFFER = 64 * 1024  # each side's socket buffer: what the peer got out is what was read
FLOOD_BYTES = 64 * CAP  # the most a flood sends: far past any cap, bounded all the same
QUICK_S = 5.0  # well inside every deadline here (10 s and more): the cap ended the call
PIECE = b"x" * 16384
CHUNK = b"%x\r\n%s\r\n" % (len(PIECE), PIECE)

OK_JSON = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
OVER_BY_LENGTH = OK_JSON + b"Content-Length: %d\r\n\r\n"
CHUNKED = OK_JSON + b"Transfer-Encoding: chunked\r\n\r\n"
FLOODS = {
    "content-length": (OVER_BY_LENGTH % (10 * 1024**3), PIECE),  # says 10 GiB, then sends
    "chunked": (CHUNKED, CHUNK),  # no length: chunk after chunk, no last chunk
}


def test_the_calls_here_are_capped_at_one_mib() -> None:
    assert verification.VERIFY_MAX_BYTES == oauth.ENDPOINT_ANSWER_MAX_BYTES == CAP
    assert size_in_words(CAP) == "1 MiB"


class Flood(Trickler):
    """A loopback peer: to the one connection it takes it answers `head`, then `piece` after
    `piece` up to `total` bytes, then `tail`. `dripped` counts the bytes of body the kernel
    took from it; `hung_up` is set when the client closed the connection first."""

    def __init__(self, head: bytes, piece: bytes, *, total: int, tail: bytes = b"") -> None:
        self.total, self.tail = total, tail  # before the thread starts
        super().__init__(head, piece)

    def _trickle(self, conn: socket.socket) -> None:
        # A small send buffer (and the client's small receive buffer, _tight_session):
        # what the kernel takes from the peer is then close to what the client read.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
        _read_request(conn)
        try:
            conn.sendall(self.head)
            while self.dripped < self.total and not self._stop.is_set():
                piece = self.drip[: self.total - self.dripped]
                conn.sendall(piece)
                self.dripped += len(piece)
            conn.sendall(self.tail)
        except OSError:  # reset or broken pipe: the client closed it
            self.hung_up.set()


def _read_request(conn: socket.socket) -> None:
    """Read the request whole, so that closing the connection after answering sends no reset."""
    conn.settimeout(WAIT_S)
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            return
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    while length and len(body) < int(length.group(1)):
        more = conn.recv(65536)
        if not more:
            return
        body += more


Start = Callable[..., Flood]


@pytest.fixture
def flood() -> Iterator[Start]:
    """Starts Floods (head, piece, total=…, tail=…); each is closed after the test."""
    started: list[Flood] = []

    def start(head: bytes, piece: bytes, *, total: int = FLOOD_BYTES, tail: bytes = b"") -> Flood:
        started.append(Flood(head, piece, total=total, tail=tail))
        return started[-1]

    yield start
    for peer in started:
        peer.close()


def _tight_session() -> requests.Session:
    """The server's outbound session (guarded, loopback allowed as in the tests' config)
    with a small receive buffer, so the kernel does not take megabytes in for the client."""
    http = guarded_session(allow=parse_network_allow("127.0.0.1/32"))
    small = (socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    for adapter in set(http.adapters.values()):  # one adapter, mounted for http and https
        adapter.poolmanager.connection_pool_kw["socket_options"] = [
            *HTTPConnection.default_socket_options,
            small,
        ]
    return http


def _hung_up_early(peer: Flood) -> bool:
    """True when the client closed the connection while the peer had sent at most twice the
    cap of body (the cap, what the two small buffers held, a piece in flight)."""
    return peer.ended.wait(WAIT_S) and peer.hung_up.is_set() and peer.dripped <= 2 * CAP


# -- credentials check and who-am-I ---------------------------------------------------------


def _integration(session: Session, url: str) -> Integration:
    lab = create_facility(session, slug="lab")
    integration = create_integration(
        session,
        facility=lab,
        key="hoard",
        base_url=url,
        verify={"method": "GET", "path": "/me"},
        whoami={"method": "GET", "path": "/me", "field": "login"},
    )
    session.commit()
    return integration


@pytest.mark.parametrize("kind", FLOODS)
def test_a_credentials_check_answered_with_a_flood_is_stopped_at_the_cap(
    app: Flask, session: Session, flood: Start, kind: str
) -> None:
    """Test connection: the check's answer is said to be over 1 MiB, at once, and the peer
    was hung up on with little more than that sent."""
    peer = flood(*FLOODS[kind])
    integration = _integration(session, peer.url)
    started = time.monotonic()
    verdict = verification.verify_credentials(
        integration, creds={"api_key": "k"}, parameters={}, vault=extensions.vault(app),
        http=_tight_session(),
    )
    took = time.monotonic() - started
    assert verdict == verification.Verdict(
        False,
        None,
        "Hoard's answer to the check is larger than 1 MiB, so the check was stopped; its "
        "request (GET /me) should ask for something small, such as the account's own profile",
    )
    assert took < QUICK_S
    assert _hung_up_early(peer), peer.dripped


@pytest.mark.parametrize("kind", FLOODS)
def test_a_whoami_answered_with_a_flood_names_no_one_at_once(
    app: Flask, session: Session, flood: Start, kind: str
) -> None:
    """The other caller of send_as_account: no identity, and no megabytes read for it."""
    peer = flood(*FLOODS[kind])
    integration = _integration(session, peer.url)
    started = time.monotonic()
    found = identity.identify(
        integration, creds={"api_key": "k"}, parameters={}, vault=extensions.vault(app),
        http=_tight_session(),
    )
    assert found is None
    assert time.monotonic() - started < QUICK_S
    assert _hung_up_early(peer), peer.dripped


@pytest.mark.parametrize("kind", ["content-length", "chunked"])
def test_a_credentials_check_answered_with_exactly_the_cap_is_read(
    app: Flask, session: Session, flood: Start, kind: str
) -> None:
    """An answer of 1 MiB (not more) is read as before: the check is accepted."""
    if kind == "content-length":
        peer = flood(OVER_BY_LENGTH % CAP, PIECE, total=CAP)
    else:
        peer = flood(CHUNKED, CHUNK, total=CAP // len(PIECE) * len(CHUNK), tail=b"0\r\n\r\n")
    integration = _integration(session, peer.url)
    verdict = verification.verify_credentials(
        integration, creds={"api_key": "k"}, parameters={}, vault=extensions.vault(app),
        http=_tight_session(),
    )
    assert verdict == verification.Verdict(True, 200, "Hoard accepted the credentials")
    assert peer.ended.wait(WAIT_S) and not peer.hung_up.is_set()


# -- OAuth token and revocation endpoints ---------------------------------------------------


def _settings(url: str) -> oauth.OAuthSettings:
    return oauth.OAuthSettings(
        authorization_url=f"{url}/authorize", token_url=f"{url}/token",
        revoke_url=f"{url}/revoke", scopes=(), scope_separator=" ", pkce=False,
        token_request_method="POST", token_auth_method="client_secret_post",
        authorization_params={},
    )


def _call(call: str, url: str, http: requests.Session) -> object:
    settings = _settings(url)
    if call == "exchange":
        return oauth.exchange_code(
            settings, client_id="c", client_secret="s", redirect_uri="https://app.test/cb",
            code="the-code", code_verifier=None, http=http,
        )
    if call == "refresh":
        return oauth.refresh_token(
            settings, client_id="c", client_secret="s", refresh_token="r", http=http
        )
    return oauth.revoke(
        settings, client_id="c", client_secret="s", token="t", token_type_hint="refresh_token",
        http=http,
    )


@pytest.mark.parametrize("kind", FLOODS)
@pytest.mark.parametrize("call", ["exchange", "refresh", "revoke"])
def test_a_token_endpoint_that_floods_its_answer_is_stopped_at_the_cap(
    flood: Start, call: str, kind: str
) -> None:
    """invalid_response with the size in words, at once (their timeouts are 15 and 30 s),
    and the peer hung up on with little more than the cap sent."""
    peer = flood(*FLOODS[kind])
    started = time.monotonic()
    with pytest.raises(oauth.OAuthProviderError) as refused:
        _call(call, peer.url, _tight_session())
    took = time.monotonic() - started
    endpoint = "revocation" if call == "revoke" else "token"
    assert (refused.value.error, refused.value.description) == (
        "invalid_response",
        f"the {endpoint} endpoint's answer is larger than 1 MiB",
    )
    assert took < QUICK_S
    assert _hung_up_early(peer), peer.dripped


def test_a_token_answer_of_exactly_the_cap_is_read(flood: Start) -> None:
    """A token answer of 1 MiB (a provider's padding, say) still gives the tokens."""
    token = {"access_token": "a1", "token_type": "Bearer", "refresh_token": "r1", "pad": ""}
    token["pad"] = "p" * (CAP - len(json.dumps(token)))
    body = json.dumps(token).encode()
    assert len(body) == CAP
    peer = flood(OVER_BY_LENGTH % CAP, body, total=CAP)
    got = _call("refresh", peer.url, _tight_session())
    assert isinstance(got, dict)
    assert (got["access_token"], got["refresh_token"]) == ("a1", "r1")
    assert peer.ended.wait(WAIT_S) and not peer.hung_up.is_set()


def test_a_revocation_with_a_small_answer_still_succeeds(flood: Start) -> None:
    body = b"{}"
    peer = flood(OVER_BY_LENGTH % len(body), body, total=len(body))
    assert _call("revoke", peer.url, _tight_session()) is None
    assert peer.ended.wait(WAIT_S) and not peer.hung_up.is_set()
