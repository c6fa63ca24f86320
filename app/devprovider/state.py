"""The provider's in-memory state: clients, codes, tokens, counters, and test controls."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping

from flask import Flask

from .config import ClientSpec, ProviderConfig
from .models import AuthorizationCode, Client, Token

EXTENSION_KEY = "devprovider"

STAT_NAMES = ("token_requests", "refreshes", "code_exchanges", "revocations", "api_calls")


class Stats(Mapping[str, int]):
    """Thread-safe counters; read like a dict (``stats["refreshes"]``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(STAT_NAMES, 0)

    def increment(self, name: str) -> None:
        """Add one to a counter."""
        with self._lock:
            self._counts[name] += 1

    def reset(self) -> None:
        """Set every counter back to zero."""
        with self._lock:
            self._counts = dict.fromkeys(STAT_NAMES, 0)

    def snapshot(self) -> dict[str, int]:
        """Return a consistent copy of all counters."""
        with self._lock:
            return dict(self._counts)

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        return len(STAT_NAMES)

    def __repr__(self) -> str:
        return f"Stats({self.snapshot()})"


class Provider:
    """All mutable state of one provider app, guarded by one lock."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.stats = Stats()
        self._lock = threading.RLock()
        self._clients: dict[str, Client] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._by_access: dict[str, Token] = {}
        self._by_refresh: dict[str, Token] = {}
        self._rate_limited: set[str] = set()
        self.reset()

    # -- test and demo controls -------------------------------------------------------

    def add_client(self, spec: ClientSpec) -> Client:
        """Register (or replace) a client."""
        client = Client(spec)
        with self._lock:
            self._clients[spec.client_id] = client
        return client

    def revoke_all_refresh_tokens(self, username: str | None = None) -> int:
        """Revoke every refresh token (of one user if given); return how many."""
        with self._lock:
            revoked = 0
            for token in self._by_refresh.values():
                if username is not None and token.username != username:
                    continue
                if not token.refresh_revoked:
                    token.refresh_revoked = True
                    revoked += 1
            return revoked

    def expire_access_tokens(self) -> int:
        """Make every access token issued so far expired now; return how many."""
        now = time.time()
        with self._lock:
            expired = 0
            for token in self._by_access.values():
                if token.expires_at > now:
                    token.expires_at = now - 1
                    expired += 1
            return expired

    def reset(self) -> None:
        """Forget tokens, codes, rate-limit state and counters; restore configured clients."""
        with self._lock:
            self._clients = {spec.client_id: Client(spec) for spec in self.config.clients}
            self._codes.clear()
            self._by_access.clear()
            self._by_refresh.clear()
            self._rate_limited.clear()
        self.stats.reset()

    # -- lookups used by the Authlib glue ------------------------------------------------

    def get_client(self, client_id: str) -> Client | None:
        """Return a registered client or None."""
        with self._lock:
            return self._clients.get(client_id)

    def has_user(self, username: str) -> bool:
        """True if the name is one of the configured users."""
        return username in self.config.users

    def save_code(self, code: AuthorizationCode) -> None:
        """Store an issued authorization code, dropping codes that expired unused."""
        with self._lock:
            for stale in [c for c, item in self._codes.items() if item.is_expired()]:
                del self._codes[stale]
            self._codes[code.code] = code

    def find_code(self, code: str, client_id: str) -> AuthorizationCode | None:
        """Return a live code issued to this client, or None."""
        with self._lock:
            item = self._codes.get(code)
        if item is None or item.client_id != client_id or item.is_expired():
            return None
        return item

    def claim_code(self, code: AuthorizationCode) -> bool:
        """Consume a code once; False if another request already did."""
        with self._lock:
            return self._codes.pop(code.code, None) is not None

    def save_token(self, token: Token) -> None:
        """Store an issued token under its access and refresh strings."""
        with self._lock:
            self._by_access[token.access_token] = token
            if token.refresh_token:
                self._by_refresh[token.refresh_token] = token

    def find_access_token(self, access_token: str) -> Token | None:
        """Return the token record for an access token string."""
        with self._lock:
            return self._by_access.get(access_token)

    def find_refresh_token(self, refresh_token: str) -> Token | None:
        """Return the token record for a refresh token string."""
        with self._lock:
            return self._by_refresh.get(refresh_token)

    def claim_refresh_token(self, token: Token, *, rotate: bool) -> bool:
        """Check-and-use a refresh token atomically; with rotation it is used up."""
        with self._lock:
            if token.refresh_revoked:
                return False
            if rotate:
                token.refresh_revoked = True
            return True

    def revoke(self, token: Token, *, refresh: bool) -> None:
        """Revoke the access token, and its refresh token too when asked."""
        with self._lock:
            token.access_revoked = True
            if refresh:
                token.refresh_revoked = True

    def first_rate_limited_call(self, key: str) -> bool:
        """True the first time a caller hits the rate-limit route, False afterwards."""
        with self._lock:
            if key in self._rate_limited:
                return False
            self._rate_limited.add(key)
            return True


def provider_of(app: Flask) -> Provider:
    """Return the Provider state of an app made by create_provider_app."""
    provider: Provider = app.extensions[EXTENSION_KEY]
    return provider
