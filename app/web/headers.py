"""Security headers on every answer: CSP, framing, sniffing, referrer, caching, HSTS."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request


def websocket_origin(public_url: str) -> str:
    """The ws(s):// origin of the configured public URL (what pages may connect to)."""
    parts = urlsplit(public_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}"


def csp_nonce() -> str:
    """This answer's nonce for the one inline <style> we allow (CodeMirror's theme)."""
    # Kept on the request, not on `g` (which outlives a request under a pushed app context).
    nonce = request.environ.setdefault("scriptbox.csp_nonce", secrets.token_urlsafe(16))
    return str(nonce)


def content_security_policy(public_url: str, style_nonce: str | None = None) -> str:
    """The pages' CSP: only our own files run; nothing inline, no framing, no plugins."""
    # No 'unsafe-inline' for scripts or styles: every handler lives in static/js, so an
    # injected <script> or on*= attribute does not run. form-action is left open on
    # purpose: the grant sign-in form is answered by a redirect to the provider.
    style = "'self'" + (f" 'nonce-{style_nonce}'" if style_nonce else "")
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": style,
        "img-src": "'self' data:",
        "connect-src": f"'self' {websocket_origin(public_url)}",
        "object-src": "'none'",
        "base-uri": "'none'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def _secure_headers(response: Response) -> Response:
    public_url = str(current_app.config["PUBLIC_URL"])
    headers = response.headers
    nonce = request.environ.get("scriptbox.csp_nonce")
    headers.setdefault("Content-Security-Policy", content_security_policy(public_url, nonce))
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # OAuth callbacks carry codes in the URL: no page tells another site where it was.
    headers.setdefault("Referrer-Policy", "no-referrer")
    if request.endpoint != "static":
        # Pages and answers hold CSRF tokens, API tokens or account details: never cached.
        headers["Cache-Control"] = "no-store"
    if public_url.startswith("https://"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    if response.status_code == 204:
        headers.pop("Content-Type", None)  # no content, so no type (Flask's default said HTML)
    return response


def init_app(app: Flask) -> None:
    """Add the headers to every answer of the app; templates get `csp_nonce()`."""
    app.after_request(_secure_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
