"""Issue 8.15: security headers on every answer, and the websocket's origin check."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import RejectConnection, Request, TextMessage

from tests.app.web.conftest import Site
from tests.conftest import make_app

TEMPLATES = Path(__file__).resolve().parents[3] / "app" / "templates"


def _assert_secure(headers: dict[str, str] | object, *, cached: bool = False) -> None:
    csp = headers["Content-Security-Policy"]  # type: ignore[index]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"].split()[0] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"  # type: ignore[index]
    assert headers["X-Frame-Options"] == "DENY"  # type: ignore[index]
    assert headers["Referrer-Policy"] == "no-referrer"  # type: ignore[index]
    if not cached:
        assert headers["Cache-Control"] == "no-store"  # type: ignore[index]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/login"),
        ("GET", "/f/lab/scripts"),
        ("GET", "/f/lab/editor"),
        ("GET", "/settings/tokens"),
        ("GET", "/api/me"),
        ("GET", "/api/f/lab/nothing-here"),
        ("POST", "/api/tokens"),
    ],
)
def test_every_answer_carries_the_security_headers(site: Site, method: str, path: str) -> None:
    response = site.ada.api(method, path, json={"name": "ci"})
    assert response.status_code in (200, 201, 404)
    _assert_secure(response.headers)
    assert "Strict-Transport-Security" not in response.headers  # plain http: no HSTS


def test_an_api_token_answer_is_never_cached(site: Site) -> None:
    response = site.ada.api("POST", "/api/tokens", json={"name": "ci"})
    assert response.status_code == 201 and response.json()["token"].startswith("sbx_")
    assert response.headers["Cache-Control"] == "no-store"


def test_a_method_the_url_does_not_take_is_a_405_saying_which_it_does(site: Site) -> None:
    # An API client (and a page) learns from `Allow` what to send instead (RFC 9110).
    answer = site.ada.api("PUT", "/api/f/lab/runs", json={})
    assert answer.status_code == 405
    assert answer.json()["error"]["code"] == "method_not_allowed"
    assert answer.headers["Content-Type"] == "application/json"
    assert set(answer.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    page = site.ada.http.put(f"{site.live.url}/login", timeout=30)
    assert page.status_code == 405 and "GET" in page.headers["Allow"]
    assert page.headers["Content-Type"].startswith("text/html")


def test_a_204_has_no_body_and_says_no_content_type(site: Site) -> None:
    # It said text/html, and clients that read the type before the status took it for a page.
    made = site.ada.api("POST", "/api/tokens", json={"name": "ci"})
    gone = site.ada.api("DELETE", f"/api/tokens/{made.json()['id']}")
    assert gone.status_code == 204 and gone.content == b""
    assert "Content-Type" not in gone.headers
    _assert_secure(gone.headers)


def test_static_files_get_the_headers_but_may_be_cached(site: Site) -> None:
    response = site.ada.http.get(f"{site.live.url}/static/js/api.js", timeout=30)
    assert response.status_code == 200
    _assert_secure(response.headers, cached=True)
    assert response.headers.get("Cache-Control") != "no-store"
    # Static URLs carry no version: a browser must ask again each time (a 304 while the
    # file is unchanged), or it would keep last release's JS after an upgrade.
    assert response.headers["Cache-Control"] == "no-cache"
    again = site.ada.http.get(
        f"{site.live.url}/static/js/api.js",
        headers={"If-None-Match": response.headers["ETag"]},
        timeout=30,
    )
    assert again.status_code == 304


def test_hsts_is_sent_when_served_over_https(tmp_path: Path) -> None:
    app = make_app(tmp_path, PUBLIC_URL="https://scriptbox.example.com")
    response = app.test_client().get("/login", base_url="https://scriptbox.example.com")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "wss://scriptbox.example.com" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_templates_hold_no_inline_script_or_style(template: str) -> None:
    text = (TEMPLATES / template).read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), "inline <script>"
    assert not re.search(r"\son[a-z]+\s*=", text), "inline event handler"
    assert not re.search(r"<style|\sstyle\s*=", text), "inline style"
    assert "javascript:" not in text


def _open_websocket(site: Site, *, host: str, origin: str) -> dict[str, object]:
    """Open /ws with a chosen Host header and Origin; the server's first message."""
    port = urlsplit(site.live.url).port
    assert port is not None
    conn = WSConnection(ConnectionType.CLIENT)
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(
            conn.send(
                Request(
                    host=host,
                    target="/ws?facility=lab",
                    extra_headers=[
                        (b"origin", origin.encode()),
                        (b"cookie", site.ada.cookie.encode()),
                    ],
                )
            )
        )
        while True:
            data = sock.recv(65536)
            assert data, "the server closed the connection without an answer"
            conn.receive_data(data)
            for event in conn.events():
                if isinstance(event, RejectConnection):
                    return {"type": "rejected", "status": event.status_code}
                if isinstance(event, TextMessage):
                    message: dict[str, object] = json.loads(event.data)
                    return message


def test_the_websocket_accepts_the_public_origin(site: Site) -> None:
    netloc = urlsplit(site.live.url).netloc
    assert _open_websocket(site, host=netloc, origin=site.live.url)["type"] == "hello"


def test_a_rebound_host_with_a_matching_origin_is_refused(site: Site) -> None:
    # DNS rebinding: evil.example resolves to the server, so the page's Origin and the
    # Host header agree with each other, but not with the configured public URL.
    port = urlsplit(site.live.url).port
    message = _open_websocket(
        site, host=f"evil.example:{port}", origin=f"http://evil.example:{port}"
    )
    assert message == {
        "type": "error",
        "code": "forbidden_origin",
        "message": f"origin not allowed: open Scriptbox at {site.live.url}/ for live updates "
        "(its SCRIPTBOX_PUBLIC_URL)",
        "public_url": site.live.url,
        "closing": True,
    }


def test_the_editor_page_gets_a_fresh_style_nonce_and_no_other_page_does(site: Site) -> None:
    nonces = []
    for _ in range(2):
        page = site.ada.api("GET", "/f/lab/editor")
        match = re.search(r'data-style-nonce="([^"]+)"', page.text)
        assert match is not None
        csp = page.headers["Content-Security-Policy"]
        assert f"style-src 'self' 'nonce-{match.group(1)}';" in csp
        nonces.append(match.group(1))
    assert nonces[0] != nonces[1]
    assert "nonce-" not in site.ada.api("GET", "/f/lab/scripts").headers["Content-Security-Policy"]
