"""Non-OAuth credentials for /keyapi: API key (header, query or Basic), key + secret, Basic."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from flask import Request

# Basic auth carrying an API key as the username uses a dummy password (Freshdesk sends
# "X", Stripe-style clients send nothing).
KEY_AS_USERNAME_PASSWORDS = ("X", "")


@dataclass(frozen=True)
class KeyCredential:
    """Who a /keyapi request authenticated as."""

    kind: str  # "api_key" or "basic"
    identity: str  # the key or the username
    username: str | None = None


class KeyAuthError(Exception):
    """The request carried no usable credential; .error is a short machine code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _check_key(key: str, secret: str | None, api_keys: dict[str, str | None]) -> KeyCredential:
    for known, expected_secret in api_keys.items():
        if _equal(known, key):
            if expected_secret is not None and not (
                secret is not None and _equal(expected_secret, secret)
            ):
                raise KeyAuthError("invalid_credentials", "Missing or wrong X-API-Secret.")
            return KeyCredential(kind="api_key", identity=known)
    raise KeyAuthError("invalid_credentials", "Unknown API key.")


def authenticate(
    request: Request, api_keys: dict[str, str | None], basic_users: dict[str, str]
) -> KeyCredential:
    """Check the first credential the request presents; raise KeyAuthError if it is wrong."""
    secret = request.headers.get("X-API-Secret")
    header_key = request.headers.get("X-API-Key")
    if header_key is not None:
        return _check_key(header_key, secret, api_keys)
    query_key = request.args.get("api_key")
    if query_key is not None:
        return _check_key(query_key, secret, api_keys)
    basic = request.authorization
    if basic is not None and basic.type == "basic":
        username, password = basic.username or "", basic.password or ""
        expected = basic_users.get(username)
        if expected is not None and _equal(expected, password):
            return KeyCredential(kind="basic", identity=username, username=username)
        if password in KEY_AS_USERNAME_PASSWORDS:
            return _check_key(username, secret, api_keys)
        raise KeyAuthError("invalid_credentials", "Wrong username or password.")
    raise KeyAuthError("missing_credentials", "Send X-API-Key, api_key or HTTP Basic.")
