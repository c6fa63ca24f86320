"""outbound guards: private networks are the operator's call, not an integration's

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-02 07:00:00

Drops `integrations.allow_private_network`: private, loopback and LAN addresses are now
reachable only where SCRIPTBOX_PRIVATE_NETWORK_ALLOW covers them. Integrations that had
the flag keep working where the operator's list covers their address and port; for every
one it does not cover, the upgrade logs a warning naming the integration, the address and
the entry the operator would add.

Adds `integrations.issuer` (RFC 9207 issuer the callback must name) and
`integrations.allow_plain_codes` (native-app codes without a PKCE verifier; off).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import context, op

from app.config import NetworkAllow
from app.integrations.transport import address_allowed, normalised

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None

log = logging.getLogger("scriptbox.migrations")


def _addresses(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def _report(row: Any, allow: Any) -> None:
    where = f"integration '{row.key}' of facility '{row.slug}'"
    parts = urlsplit(row.base_url)
    if "{" in parts.netloc or not parts.hostname:
        log.warning(
            "%s had allow_private_network and its host depends on each account's "
            "parameters: calls to private addresses now need SCRIPTBOX_PRIVATE_NETWORK_ALLOW",
            where,
        )
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = _addresses(parts.hostname, port)
    if not addresses:
        log.warning(
            "%s had allow_private_network; %s does not resolve now, so whether "
            "SCRIPTBOX_PRIVATE_NETWORK_ALLOW covers it could not be checked",
            where,
            parts.hostname,
        )
    for address in addresses:
        if address_allowed(address, port, allow):
            log.info("%s keeps working: %s:%s is allowed", where, address, port)
            continue
        ip = normalised(address)
        entry = f"{ip}/{ip.max_prefixlen}:{port}"
        log.warning(
            "%s had allow_private_network but SCRIPTBOX_PRIVATE_NETWORK_ALLOW does not cover "
            "%s port %s: its calls are now refused (forbidden_destination) until the operator "
            "adds %s%s",
            where,
            address,
            port,
            f"[{entry.rsplit(':', 1)[0]}]:{port}" if ip.version == 6 else entry,
            " (link-local and metadata addresses cannot be allowed at all)"
            if not address_allowed(address, port, [_everything(ip.version)])
            else "",
        )


def _everything(version: int) -> NetworkAllow:
    return NetworkAllow(ipaddress.ip_network("0.0.0.0/0" if version == 4 else "::/0"))


def upgrade() -> None:
    allow = context.config.attributes.get("private_network_allow", ())
    rows = op.get_bind().execute(
        sa.text(
            "SELECT integrations.key, integrations.base_url, facilities.slug "
            "FROM integrations JOIN facilities ON facilities.id = integrations.facility_id "
            "WHERE integrations.allow_private_network"
        )
    )
    for row in rows:
        _report(row, allow)
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.drop_column("allow_private_network")
        batch_op.add_column(sa.Column("issuer", sa.String(length=500), nullable=True))
        batch_op.add_column(
            sa.Column(
                "allow_plain_codes", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.drop_column("allow_plain_codes")
        batch_op.drop_column("issuer")
        batch_op.add_column(
            sa.Column(
                "allow_private_network", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
