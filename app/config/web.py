"""Web settings: the public URL, request and websocket caps, sign-in throttling, proxies,
and the session cookie."""

from __future__ import annotations

from typing import Any

from app.config.rules import ConfigError, require_positive, require_rates

DEFAULTS: dict[str, Any] = {
    # Public base URL used to build OAuth redirect URIs, e.g. https://scriptbox.example.com
    # None: LOCAL_PUBLIC_URL, or the address `scriptbox serve --host/--port` listens on.
    "PUBLIC_URL": None,
    # Origins allowed for `return_to` after connecting an account by API.
    "ALLOWED_RETURN_ORIGINS": [],
    # Largest request body; beyond it the answer is 413 before anything reads the body.
    "MAX_REQUEST_BYTES": 1024 * 1024,
    # Largest websocket message a page may send, and open websockets per user and process.
    "WS_MAX_MESSAGE_BYTES": 64 * 1024,
    "WS_MAX_CONNECTIONS_PER_USER": 20,
    # Messages one open page may send in a moving window (the `limits` notation): each
    # `grant.refuse` reads the database, so a socket sending faster is closed. A page sends
    # one per prompt its person refuses.
    "WS_MESSAGES_PER_SOCKET": "120 per minute",
    # Requests one user, and everyone, may hold in a run's `wait` at once, per process (each
    # holds a server thread); past either a request is answered at once, the run going on.
    # None: half the threads of `scriptbox serve` (no total under --debug).
    "MAX_WAITING_REQUESTS_PER_USER": 4,
    "MAX_WAITING_REQUESTS": None,
    # How often an open websocket re-checks that its session and membership still stand.
    "WS_RECHECK_S": 5.0,
    # Sign-in attempts allowed in a moving window (the `limits` notation), per account
    # (the email typed) and per client address.
    "LOGIN_ATTEMPTS_PER_ACCOUNT": "10 per 5 minutes",
    "LOGIN_ATTEMPTS_PER_ADDRESS": "30 per 5 minutes",
    # Reverse proxies in front of the web processes whose X-Forwarded-For and
    # X-Forwarded-Proto are trusted (werkzeug's ProxyFix). 0: the client is the peer of
    # the socket. Set it to the number of proxies that append to X-Forwarded-For (a load
    # balancer alone: 1); more than there are lets clients pick their own address.
    "TRUSTED_PROXY_HOPS": 0,
    # Check every API answer against its declared model (a 500 where they differ). None:
    # under tests and --debug, where a difference is a bug to see at once; a server in
    # production answers with what the tests checked, without paying for it per request.
    "VALIDATE_RESPONSES": None,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    # The cookie is signed again only when the session changes, not on every response:
    # its server-side record expires at sign-in + lifetime whatever the cookie says, so
    # sliding the cookie's expiry bought nothing but a signature and a Set-Cookie per request.
    "SESSION_REFRESH_EACH_REQUEST": False,
}

LOCAL_PUBLIC_URL = "http://127.0.0.1:5000"
# Hosts a server listens on that no browser opens (0.0.0.0 is "every address"; browsers
# refuse it): on this machine the server answers at loopback.
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}  # noqa: S104


def listening_url(host: str, port: int) -> str:
    """The URL a browser on this machine opens for a server listening on host:port."""
    host = _WILDCARD_HOSTS.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"http://{host}:{port}"


def validate(config: Any) -> None:
    """Refuse a public URL, request, websocket, proxy and sign-in settings that cannot work."""
    public = str(config["PUBLIC_URL"])
    if not public.startswith(("http://", "https://")) or public.endswith("/"):
        raise ConfigError(
            "SCRIPTBOX_PUBLIC_URL must be an absolute http(s) URL without a trailing /"
        )
    require_positive(
        config,
        (
            "MAX_REQUEST_BYTES",
            "WS_MAX_MESSAGE_BYTES",
            "WS_MAX_CONNECTIONS_PER_USER",
            "MAX_WAITING_REQUESTS_PER_USER",
            "WS_RECHECK_S",
        ),
    )
    waiting = config["MAX_WAITING_REQUESTS"]
    if waiting is not None and (isinstance(waiting, bool) or not isinstance(waiting, int)
                                or waiting <= 0):
        raise ConfigError("SCRIPTBOX_MAX_WAITING_REQUESTS must be a positive whole number")
    hops = config["TRUSTED_PROXY_HOPS"]
    if isinstance(hops, bool) or not isinstance(hops, int) or not 0 <= hops <= 10:
        raise ConfigError("SCRIPTBOX_TRUSTED_PROXY_HOPS must be an integer from 0 to 10")
    require_rates(
        config,
        ("LOGIN_ATTEMPTS_PER_ACCOUNT", "LOGIN_ATTEMPTS_PER_ADDRESS", "WS_MESSAGES_PER_SOCKET"),
    )
