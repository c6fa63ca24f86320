"""gunicorn's own error answers (a request it cannot read) through a real `scriptbox serve`:
JSON in the API's error shape under /api/ and /hooks/, gunicorn's page elsewhere.

Requests are written on a raw socket: no HTTP client sends a head this wrong.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from tests.app.web.test_serve import Server, start_server, stop

# gunicorn's defaults: limit_request_line 4094, limit_request_field_size 8190.
LONG_QUERY = "q=" + "a" * 5000
BIG_HEADER = "X-Big: " + "b" * 9000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("serve"))
    try:
        running.wait_ready()
        yield running
    finally:
        stop(running)


def raw(server: Server, head: str) -> tuple[int, dict[str, str], bytes]:
    """(status, headers with lowercase names, body) of the answer to `head` sent as is."""
    url = urlsplit(server.url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as conn:
        conn.sendall(head.encode("latin-1"))
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    top, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = top.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def error_of(headers: dict[str, str], body: bytes) -> dict[str, str]:
    assert headers["content-type"] == "application/json", body
    assert int(headers["content-length"]) == len(body)
    error: dict[str, str] = json.loads(body)["error"]
    return error


@pytest.mark.parametrize("path", ["/api/f/demo/runs", "/hooks/not-a-token"])
def test_a_request_line_too_long_is_a_json_414_saying_what_to_send(
    server: Server, path: str
) -> None:
    status, headers, body = raw(server, f"GET {path}?{LONG_QUERY} HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 414
    assert error_of(headers, body) == {
        "code": "request_line_too_long",
        "message": "the request line is longer than 4094 bytes: send fewer or shorter "
        "query parameters (or a shorter path)",
    }


def test_an_oversized_header_is_a_json_431_saying_what_to_send(server: Server) -> None:
    status, headers, body = raw(server, f"GET /api/me HTTP/1.1\r\nHost: x\r\n{BIG_HEADER}\r\n\r\n")
    assert status == 431
    error = error_of(headers, body)
    assert error["code"] == "request_headers_too_large"
    assert error["message"].endswith("send fewer or shorter headers (cookies included)")
    assert "8190 bytes" in error["message"]


def test_a_malformed_header_under_hooks_is_a_json_400(server: Server) -> None:
    status, headers, body = raw(server, "POST /hooks/x HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n")
    assert status == 400
    error = error_of(headers, body)
    assert error["code"] == "bad_request"
    assert error["message"].startswith("the request is not well-formed HTTP")


def test_pages_keep_gunicorns_own_answer(server: Server) -> None:
    status, headers, body = raw(server, f"GET /login?{LONG_QUERY} HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 414
    assert headers["content-type"] == "text/html"
    assert b"URI Too Long" in body


def test_a_body_refused_unread_closes_its_connection_so_the_next_request_is_answered(
    server: Server,
) -> None:
    # A body over MAX_REQUEST_BYTES (1 MiB) is a 413 before anything reads it. The answer
    # said `Connection: keep-alive`, then gunicorn gave up draining the body and closed
    # the socket: the client's next request on that kept-alive connection got no answer
    # (requests: ConnectionError "Remote end closed connection without response").
    client = requests.Session()
    body = b'{"script_id": 1, "input": "' + b"x" * (1100 * 1024) + b'"}'
    refused = client.post(
        f"{server.url}/api/f/demo/runs",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "request_too_large"
    assert refused.headers["Connection"] == "close"
    assert client.get(f"{server.url}/healthz", timeout=30).status_code == 200
    # A body the app reads keeps its connection.
    small = client.post(f"{server.url}/api/f/demo/runs", json={}, timeout=30)
    assert small.status_code == 401 and small.headers["Connection"] == "keep-alive"
