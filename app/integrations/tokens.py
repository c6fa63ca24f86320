"""Current credentials for an account, refreshing OAuth tokens race-free.

Refresh is safe across threads and processes: a conditional UPDATE takes a short lease
on the account row (only if its `version` is unchanged and no live lease exists); the
winner refreshes and stores both new tokens, the expiry and version+1 in ONE write;
everyone else waits for the version to change and re-reads. `invalid_grant` marks the
account `needs_reauth` (and tells `on_needs_reauth` once per transition, for the
embedding app's `account.needs_reauth` webhook). This module commits its own writes: a
refreshed (rotated) token must persist even if the caller's transaction later fails.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import requests
from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from app.integrations import oauth, transport
from app.integrations.catalog_entry import OAUTH_MODES
from app.integrations.vault import Vault
from app.models import Account, Integration, OAuthClient
from app.models._types import utcnow

log = logging.getLogger(__name__)

# Token-endpoint errors that say the client itself (id or secret) is wrong, not the account.
CLIENT_REJECTED_ERRORS = frozenset({"invalid_client", "unauthorized_client"})


class NeedsReauth(Exception):
    """The account's grant is gone (invalid_grant); it is marked `needs_reauth`."""

    def __init__(self, account_id: int) -> None:
        super().__init__(f"account {account_id} needs to be connected again")
        self.account_id = account_id


class RefreshFailed(Exception):
    """The provider could not refresh the token for another reason (it is unreachable…)."""


def token_expiry(token: dict[str, Any], now: datetime) -> datetime | None:
    """When a token answer expires (from expires_in), if it says."""
    expires_in = token.get("expires_in")
    try:
        return now + timedelta(seconds=float(expires_in)) if expires_in is not None else None
    except (TypeError, ValueError):
        return None


def stored_tokens(token: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The token fields we keep (a provider that omits refresh_token keeps the old one)."""
    kept = {
        "access_token": str(token["access_token"]),
        "token_type": str(token.get("token_type") or "Bearer"),
    }
    refresh = token.get("refresh_token") or (previous or {}).get("refresh_token")
    if refresh:
        kept["refresh_token"] = str(refresh)
    if token.get("scope"):
        scope = token["scope"]
        kept["scope"] = " ".join(scope) if isinstance(scope, list) else str(scope)
    return kept


class TokenManager:
    """Hands out decrypted credentials; refreshes OAuth tokens before they expire."""

    def __init__(
        self,
        *,
        session_factory: Callable[[], Session],
        vault: Vault,
        http: requests.Session | None = None,
        margin_s: int = 1800,
        lease_s: float = 30.0,
        on_needs_reauth: Callable[[int], None] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._vault = vault
        self._http = http or transport.guarded_session()
        self._margin = margin_s
        self._lease_s = lease_s
        self._on_needs_reauth = on_needs_reauth
        self._owner = secrets.token_hex(8)
        self._locks: dict[int, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, account_id: int) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(account_id, threading.Lock())

    def _read(self, account_id: int) -> tuple[Account, Integration, dict[str, Any]]:
        with self._session_factory() as session:
            account = session.get(Account, account_id)
            if account is None:
                raise NeedsReauth(account_id)
            integration = session.get(Integration, account.integration_id)
            assert integration is not None
            session.expunge_all()
        creds = self._vault.decrypt_json(account.credentials_enc) if account.credentials_enc else {}
        return account, integration, creds

    def _due(self, account: Account) -> bool:
        expires = account.token_expires_at
        if expires is None:
            return False
        issued = account.token_issued_at or (expires - timedelta(seconds=2 * self._margin))
        lifetime = (expires - issued).total_seconds()
        margin = min(float(self._margin), max(lifetime, 0.0) / 2)
        return utcnow() >= expires - timedelta(seconds=margin)

    def credentials(self, account_id: int) -> dict[str, str]:
        """Decrypted credentials; OAuth tokens refreshed first when they are due."""
        account, integration, creds = self._read(account_id)
        if integration.auth_mode not in OAUTH_MODES:
            return creds
        if account.status == "needs_reauth":
            raise NeedsReauth(account_id)
        if not creds.get("access_token") or self._due(account):
            return self._refresh(account_id, account.version)
        return creds

    def refresh_after_rejection(
        self, account_id: int, rejected_access_token: str
    ) -> dict[str, str]:
        """The API refused this token: refresh once, unless someone already replaced it."""
        account, _integration, creds = self._read(account_id)
        if account.status == "needs_reauth":
            raise NeedsReauth(account_id)
        if creds.get("access_token") != rejected_access_token:
            return creds
        return self._refresh(account_id, account.version)

    # -- the race-free refresh ---------------------------------------------------------

    def _refresh(self, account_id: int, seen_version: int) -> dict[str, str]:
        with self._lock(account_id):  # fast path for threads of this process
            deadline = time.monotonic() + self._lease_s + 5
            while True:
                account, integration, creds = self._read(account_id)
                if account.version != seen_version:
                    if account.status == "needs_reauth":
                        raise NeedsReauth(account_id)
                    return creds
                if self._take_lease(account_id, seen_version):
                    return self._refresh_holding_lease(account, integration, creds)
                if time.monotonic() > deadline:
                    raise RefreshFailed("another refresh of this account did not finish")
                time.sleep(0.05)  # another process holds the lease; wait for its write

    def _take_lease(self, account_id: int, version: int) -> bool:
        now = utcnow()
        with self._session_factory() as session, session.begin():
            result = session.execute(
                update(Account)
                .where(
                    Account.id == account_id,
                    Account.version == version,
                    or_(Account.refresh_lease_until.is_(None), Account.refresh_lease_until < now),
                )
                .values(
                    refresh_lease_owner=self._owner,
                    refresh_lease_until=now + timedelta(seconds=self._lease_s),
                )
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def _client(self, account: Account, integration: Integration) -> tuple[int, str, str | None]:
        client_row_id = account.oauth_client_id or integration.current_client_id
        with self._session_factory() as session:
            client = session.get(OAuthClient, client_row_id) if client_row_id else None
            if client is None:
                raise RefreshFailed("the integration has no OAuth client configured")
            secret = (
                self._vault.decrypt(client.client_secret_enc) if client.client_secret_enc else None
            )
            return client.id, client.client_id, secret

    def _mark_client(self, client_row_id: int, rejected_with: str | None) -> None:
        """Record (or clear) the provider refusing this client, for the admin's pages."""
        with self._session_factory() as session, session.begin():
            statement = update(OAuthClient).where(OAuthClient.id == client_row_id)
            if rejected_with is None:
                statement = statement.where(OAuthClient.rejected_with.is_not(None))
            session.execute(
                statement.values(
                    rejected_with=rejected_with,
                    rejected_at=utcnow() if rejected_with is not None else None,
                )
            )

    def _refresh_holding_lease(
        self, account: Account, integration: Integration, creds: dict[str, Any]
    ) -> dict[str, str]:
        settings = oauth.OAuthSettings.of(integration, account.parameters)
        client_row_id: int | None = None
        try:
            client_row_id, client_id, secret = self._client(account, integration)
            if integration.auth_mode == "oauth2_client_credentials":
                token = oauth.client_credentials_token(
                    settings, client_id=client_id, client_secret=secret, http=self._http
                )
            elif creds.get("refresh_token"):
                token = oauth.refresh_token(
                    settings,
                    client_id=client_id,
                    client_secret=secret,
                    refresh_token=creds["refresh_token"],
                    http=self._http,
                )
            else:
                raise oauth.OAuthProviderError("invalid_grant", "no refresh token to use")
        except oauth.OAuthProviderError as exc:
            if exc.error == "invalid_grant":
                if self._store_needs_reauth(account.id):
                    self._tell_needs_reauth(account.id)
                raise NeedsReauth(account.id) from None
            self._store(account.id)
            if exc.error in CLIENT_REJECTED_ERRORS and client_row_id is not None:
                self._mark_client(client_row_id, exc.error)
                raise RefreshFailed(
                    f"the provider refused the integration's OAuth client ({exc.error}); "
                    "an admin must check the client id and secret"
                ) from None
            raise RefreshFailed(
                f"the provider refused to refresh the token ({exc.error})"
            ) from None
        except Exception:
            self._store(account.id)
            raise
        self._mark_client(client_row_id, None)
        now = utcnow()
        fresh = stored_tokens(token, creds)
        self._store(
            account.id,
            credentials_enc=self._vault.encrypt_json(fresh),
            token_expires_at=token_expiry(token, now),
            token_issued_at=now,
            status="active",
        )
        return fresh

    def _store_needs_reauth(self, account_id: int) -> bool:
        """Mark the account `needs_reauth` (lease released); True when this write is the
        one that changed its status (so the transition is announced once)."""
        with self._session_factory() as session, session.begin():
            mine = (Account.id == account_id, Account.refresh_lease_owner == self._owner)
            became = session.execute(
                update(Account)
                .where(*mine, Account.status != "needs_reauth")
                .values(status="needs_reauth")
            ).rowcount  # type: ignore[attr-defined]
            session.execute(
                update(Account)
                .where(*mine)
                .values(
                    version=Account.version + 1,
                    refresh_lease_owner=None,
                    refresh_lease_until=None,
                )
            )
            return bool(became)

    def _tell_needs_reauth(self, account_id: int) -> None:
        if self._on_needs_reauth is None:
            return
        try:
            self._on_needs_reauth(account_id)
        except Exception:  # telling an embedding app must not change the call's outcome
            log.exception("could not announce that account %s needs a new sign-in", account_id)

    def _store(self, account_id: int, **values: Any) -> None:
        """One write: new values (if any), version+1 when they change, lease released."""
        with self._session_factory() as session, session.begin():
            statement = update(Account).where(
                Account.id == account_id, Account.refresh_lease_owner == self._owner
            )
            if values:
                values["version"] = Account.version + 1
            session.execute(
                statement.values(refresh_lease_owner=None, refresh_lease_until=None, **values)
            )
