"""Where an integration's secrets go, and what a save that sends them somewhere new does.

A credential goes only to its integration's origins (DESIGN §6), so whoever sets those
origins chooses who receives the secrets. An admin who pointed the base URL or the token
URL at a server of theirs would read back the write-only OAuth client secret and every
member's own token or key (a member's personal GitHub token is theirs, not the facility's).
So a save that adds an origin signs every account of the integration out (its owner connects
again, to the new origin, knowingly), and one that moves the token or revoke URL must carry
the client secret again.
Flush, never commit (the request edge commits).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.errors import ValidationError
from app.integrations.catalog_entry import OAUTH_MODES
from app.integrations.defaults import looks_secret
from app.integrations.destinations import (
    DestinationRefused,
    Origin,
    allowed_origins,
    origin_of,
)
from app.models import Account, Integration, OAuthClient

# The columns that say where secrets go: script calls' credentials go to the base URL and
# the allowed hosts; OAuth modes also send the client secret and tokens to these two.
OAUTH_SECRET_URLS = ("token_url", "revoke_url")
SECRET_COLUMNS = ("auth_mode", "base_url", "allowed_hosts", *OAUTH_SECRET_URLS)
# Sent with every script call, to the same origins; their values are shown masked.
DEFAULT_FIELDS = ("default_headers", "default_query")


@dataclass(frozen=True)
class OriginChange:
    """A save that added origins: where the credentials were issued for, what was added
    (`secret_to`: the OAuth client secret's new origins among them), and how many accounts
    lost their credentials for it."""

    issued_for: frozenset[str]
    added: frozenset[str]
    secret_to: frozenset[str] = frozenset()
    accounts: int = 0
    # The accounts that were active until this save: each is announced as needs_reauth.
    newly_stale: tuple[int, ...] = ()

    @property
    def message(self) -> str | None:
        """In words, for the admin who saved: who must connect again, and why (None when
        no account held credentials)."""
        if not self.accounts:
            return None
        return (
            f"{self.accounts} connected account(s) must connect again: their credentials "
            f"were issued for {', '.join(sorted(self.issued_for))}, not for "
            f"{', '.join(sorted(self.added))}"
        )


def secret_origins(values: Mapping[str, Any]) -> frozenset[str]:
    """The origins (scheme://host:port) an integration's secrets go to, from its column
    values: the base URL, each allowed host and, for OAuth, the token and revoke URLs. A
    `{parameter}` in a host is compared as written (the template is what an admin sets)."""
    base_url = str(values.get("base_url") or "")
    hosts = [str(host) for host in values.get("allowed_hosts") or []]
    try:
        origins = {_bare(origin) for origin in allowed_origins(base_url, hosts)}
    except DestinationRefused:
        # A stored URL the rules cannot read: compared by its text, never skipped.
        origins = {origin_of(url) or url for url in (base_url, *hosts)}
    return frozenset(origins | client_secret_origins(values))


def client_secret_origins(values: Mapping[str, Any]) -> frozenset[str]:
    """The origins an OAuth client secret goes to: the token and revoke URLs' (none for
    other modes)."""
    if values.get("auth_mode") not in OAUTH_MODES:
        return frozenset()
    return frozenset(
        origin_text(str(values[name])) for name in OAUTH_SECRET_URLS if values.get(name)
    )


def origin_change(integration: Integration, columns: Mapping[str, Any]) -> OriginChange | None:
    """What saving `columns` (validated, the edit's values over the saved ones) adds to
    where the integration's secrets go; None when it adds nothing (a path changed, or an
    origin was removed)."""
    saved = {name: getattr(integration, name) for name in SECRET_COLUMNS}
    saving = {name: columns.get(name, getattr(integration, name)) for name in SECRET_COLUMNS}
    before = secret_origins(saved)
    # The secret's own: a token URL moved to the base URL's origin sends it somewhere new.
    secret_to = client_secret_origins(saving) - client_secret_origins(saved)
    added = (secret_origins(saving) - before) | secret_to
    return OriginChange(issued_for=before, added=added, secret_to=secret_to) if added else None


def check_client_secret(
    session: Session, integration: Integration, change: OriginChange, fields: Mapping[str, Any]
) -> None:
    """Refuse a save that moves the token or revoke URL unless it carries the client secret
    again, when one is saved: the secret would otherwise go to an origin nobody typed it
    for (Test connection, refresh). A new base URL or allowed host does not receive it."""
    if not change.secret_to or fields.get("client_secret"):
        return
    if not _has_client_secret(session, integration):
        return
    raise ValidationError(
        f"client_secret: the client secret would now be sent to "
        f"{', '.join(sorted(change.secret_to))}: enter it again to send it there",
        field="client_secret",
    )


def check_saved_defaults(
    problems: list[ValidationError],
    saved: tuple[Mapping[str, str], Mapping[str, str]],
    change: OriginChange,
    fields: Mapping[str, Any],
) -> None:
    """Note a refusal for each saved defaults list the save does not send again while it
    holds a value taken for a credential: its values are shown masked, so it is a secret
    typed for the old origins as much as the client secret is."""
    for field, values in zip(DEFAULT_FIELDS, saved, strict=True):
        if field in fields:
            continue  # sent whole again: what the admin typed now goes where they said
        secret = sorted(name for name, value in values.items() if looks_secret(name, value))
        if secret:
            problems.append(ValidationError(
                f"{field}: the saved value of {', '.join(secret)} would now be sent to "
                f"{', '.join(sorted(change.added))}: send {field} again with "
                f"{'its value' if len(secret) == 1 else 'their values'}",
                field=field,
            ))


def sign_out_accounts(
    session: Session, integration: Integration, change: OriginChange
) -> OriginChange:
    """Drop every account's credentials (master and members' own) and mark it
    needs_reauth, and when the token or revoke URL moved forget the saved client secrets
    (the one the save carries is set after this); nothing is revoked, since revoking would
    send the token to the new origin.
    The answer counts the accounts that held credentials, and names those that were active."""
    mine = Account.integration_id == integration.id
    held = session.scalar(
        select(func.count(Account.id)).where(mine, Account.credentials_enc.is_not(None))
    )
    active = session.scalars(
        select(Account.id).where(mine, Account.status == "active").order_by(Account.id)
    ).all()
    # Releasing the refresh lease as well: a refresh under way stores its tokens only
    # while it holds the lease, so it cannot bring credentials back after this.
    session.execute(
        update(Account)
        .where(mine)
        .values(
            credentials_enc=None,
            status="needs_reauth",
            token_expires_at=None,
            token_issued_at=None,
            version=Account.version + 1,
            refresh_lease_owner=None,
            refresh_lease_until=None,
        )
    )
    if change.secret_to:  # the saved secrets were typed for the token URL's old origin
        session.execute(
            update(OAuthClient)
            .where(OAuthClient.integration_id == integration.id)
            .values(client_secret_enc=None)
        )
    session.flush()
    return OriginChange(
        issued_for=change.issued_for,
        added=change.added,
        secret_to=change.secret_to,
        accounts=held or 0,
        newly_stale=tuple(active),
    )


def _has_client_secret(session: Session, integration: Integration) -> bool:
    # Any client of the integration, not only the current one: a later save that names an
    # old client id again would make its saved secret current.
    return bool(
        session.scalar(
            select(OAuthClient.id).where(
                OAuthClient.integration_id == integration.id,
                OAuthClient.client_secret_enc.is_not(None),
            )
        )
    )


def origin_text(url: str) -> str:
    """A URL's origin (scheme://host:port) by the destination rules; a URL they cannot
    read, as written."""
    try:
        return _bare(Origin.of(url))
    except DestinationRefused:
        return origin_of(url) or url


def _bare(origin: Origin) -> str:
    """The origin without its path prefix (a path-only change sends nothing elsewhere)."""
    return str(Origin(origin.scheme, origin.host, origin.port))
