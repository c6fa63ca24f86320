"""Integrations, their OAuth clients, connected accounts, grants, OAuth states and the call log.

Columns ending in `_enc` hold vault ciphertext (app.integrations.vault), never plaintext.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base
from app.integrations.catalog_entry import (
    ACCOUNTS_PER_USER,
    MAX_CLIENT_ID_LENGTH,
    MAX_IDENTITY_LENGTH,
    MAX_KEY_LENGTH,
    MAX_LABEL_LENGTH,
    MAX_NAME_LENGTH,
    MAX_URL_LENGTH,
)
from app.models._types import UTCDateTime, new_id, utcnow

GRANT_STATES = ("pending", "granted", "refused", "expired", "cancelled")


class Integration(Base):
    """A service a facility's scripts may call, with every field of DESIGN §5."""

    __tablename__ = "integrations"
    __table_args__ = (UniqueConstraint("facility_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    name: Mapped[str] = mapped_column(String(MAX_NAME_LENGTH))
    catalog_key: Mapped[str | None] = mapped_column(String(MAX_KEY_LENGTH))
    auth_mode: Mapped[str] = mapped_column(String(32))
    base_url: Mapped[str] = mapped_column(String(MAX_URL_LENGTH))
    authorization_url: Mapped[str | None] = mapped_column(String(MAX_URL_LENGTH))
    token_url: Mapped[str | None] = mapped_column(String(MAX_URL_LENGTH))
    token_request_method: Mapped[str] = mapped_column(String(8), default="POST")
    token_auth_method: Mapped[str] = mapped_column(String(32), default="client_secret_post")
    revoke_url: Mapped[str | None] = mapped_column(String(MAX_URL_LENGTH))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    scope_separator: Mapped[str] = mapped_column(String(4), default=" ")
    pkce: Mapped[bool] = mapped_column(default=True)
    authorization_params: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    placements: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    credential_fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    parameters: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    default_headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    default_query: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # The values of default_headers/default_query, encrypted (app.integrations.defaults);
    # those two columns then keep only the names.
    defaults_enc: Mapped[str | None] = mapped_column(Text)
    allowed_hosts: Mapped[list[str]] = mapped_column(JSON, default=list)
    refresh_on_403: Mapped[bool] = mapped_column(default=False)
    # The request that checks typed credentials before they are stored (catalog `verify`).
    verify: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The request that names a newly connected account's identity (catalog `whoami`).
    whoami: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # "several" (labels tell them apart) or "one": how many accounts each person may connect.
    accounts_per_user: Mapped[str] = mapped_column(
        String(8), default=ACCOUNTS_PER_USER[0], server_default=ACCOUNTS_PER_USER[0]
    )
    # RFC 9207: the `iss` the provider must send back with every authorization response.
    issuer: Mapped[str | None] = mapped_column(String(500))
    # Native apps may hand in a code without its PKCE verifier only where the admin allows.
    allow_plain_codes: Mapped[bool] = mapped_column(default=False)
    # Switched off by an admin: scripts' calls are refused, settings and accounts are kept.
    enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    current_client_id: Mapped[int | None] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="SET NULL", use_alter=True)
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    current_client: Mapped[OAuthClient | None] = relationship(
        foreign_keys=[current_client_id], post_update=True
    )


class OAuthClient(Base):
    """One OAuth client (id + secret) of an integration; accounts keep the one that issued them."""

    __tablename__ = "oauth_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), index=True
    )
    client_id: Mapped[str] = mapped_column(String(MAX_CLIENT_ID_LENGTH))
    client_secret_enc: Mapped[str | None] = mapped_column(Text)
    # Set when the provider refused this client on a token request (e.g. invalid_client after
    # the secret was changed at the provider); cleared when it is saved again or works.
    rejected_with: Mapped[str | None] = mapped_column(String(64))
    rejected_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Account(Base):
    """Credentials for one integration: the facility's master account or a user's own."""

    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("integration_id", "owner_kind", "user_id", "label"),
        Index("ix_accounts_lookup", "integration_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    owner_kind: Mapped[str] = mapped_column(String(8))  # master | user
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(MAX_LABEL_LENGTH), default="")
    parameters: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    credentials_enc: Mapped[str | None] = mapped_column(Text)
    oauth_client_id: Mapped[int | None] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="SET NULL")
    )
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    token_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | needs_reauth
    # Who the account is at the service (e.g. a GitHub login), from the integration's whoami
    # request when it was connected; blank when it has none or the request failed.
    identity: Mapped[str | None] = mapped_column(String(MAX_IDENTITY_LENGTH))
    # Optimistic concurrency for token refresh: every credential write bumps `version`;
    # the refresh lease lets exactly one thread or process refresh at a time.
    version: Mapped[int] = mapped_column(default=1)
    refresh_lease_owner: Mapped[str | None] = mapped_column(String(64))
    refresh_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    integration: Mapped[Integration] = relationship()
    oauth_client: Mapped[OAuthClient | None] = relationship()

    @property
    def kind(self) -> str:
        """How the call log names this account: master, user or label:<label>."""
        if self.owner_kind == "master":
            return "master"
        return f"label:{self.label}" if self.label else "user"


class Grant(Base):
    """A run's request for an account the user has not connected (DESIGN §4)."""

    __tablename__ = "grants"
    __table_args__ = (Index("ix_grants_pending", "user_id", "facility_id", "state"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    run_id: Mapped[str | None] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(MAX_LABEL_LENGTH), default="")
    state: Mapped[str] = mapped_column(String(12), default="pending")
    reason: Mapped[str | None] = mapped_column(String(40))
    # Every call waiting on it would take the facility's master account (account=None,
    # DESIGN §3), so connecting the master answers it; one for the user's own does not.
    takes_master: Mapped[bool] = mapped_column(default=False, server_default=false())
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    integration: Mapped[Integration] = relationship()


class OAuthState(Base):
    """A single-use OAuth `state`, bound to the user's session, purpose and grant."""

    __tablename__ = "oauth_states"

    id: Mapped[int] = mapped_column(primary_key=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))  # connect | master | grant | api
    session_binding: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    oauth_client_id: Mapped[int | None] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="SET NULL")
    )
    grant_id: Mapped[str | None] = mapped_column(ForeignKey("grants.id", ondelete="SET NULL"))
    label: Mapped[str] = mapped_column(String(MAX_LABEL_LENGTH), default="")
    parameters: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    code_verifier_enc: Mapped[str | None] = mapped_column(Text)
    return_to: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CallLog(Base):
    """One integration call: who, which account kind, what, outcome; never credentials."""

    __tablename__ = "call_log"
    __table_args__ = (Index("ix_call_log_facility_created", "facility_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str | None] = mapped_column(String(32), index=True)
    script_id: Mapped[int | None]
    user_id: Mapped[int | None]
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    integration_id: Mapped[int | None]
    integration_key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    # "label:" and the label
    account_kind: Mapped[str | None] = mapped_column(String(MAX_LABEL_LENGTH + 6))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(1000))
    status: Mapped[int | None]
    # The call's own time; the wait for a person to sign in is kept apart in wait_ms.
    duration_ms: Mapped[float | None]
    wait_ms: Mapped[float | None]
    error_code: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def to_dict(self) -> dict[str, Any]:
        """The API shape of a call log row."""
        return {
            "id": self.id,
            "run_id": self.run_id,
            "script_id": self.script_id,
            "user_id": self.user_id,
            "integration": self.integration_key,
            "account": self.account_kind,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "duration_ms": self.duration_ms,
            "wait_ms": self.wait_ms,
            "error": self.error_code,
            "created_at": self.created_at.isoformat(),
        }
