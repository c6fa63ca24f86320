"""What an integration looks like to an admin (every setting, secrets masked or left out)
and to a member (what connecting an account needs)."""

from __future__ import annotations

from typing import Any

from app.integrations import catalog
from app.integrations.defaults import masked
from app.models import Integration
from app.services.integration_fields import COLUMNS


def integration_public_view(integration: Integration) -> dict[str, Any]:
    """Everything about an integration an admin may see; never the client secret, and
    default header and query values only masked (they are write-only)."""
    client = integration.current_client
    entry = catalog.load_catalog().get(integration.catalog_key or "")
    view = {column: getattr(integration, column) for column in COLUMNS}
    view.update(
        default_headers=masked(integration.default_headers),
        default_query=masked(integration.default_query),
        key=integration.key,
        catalog_key=integration.catalog_key,
        placements=integration.placements,
        parameters=integration.parameters,
        issuer=integration.issuer,
        allow_plain_codes=integration.allow_plain_codes,
        accounts_per_user=integration.accounts_per_user,
        client_id=client.client_id if client else None,
        has_client_secret=bool(client and client.client_secret_enc),
        setup_guide=entry.setup_guide if entry else None,
        docs_url=entry.docs_url if entry else None,
    )
    return view


def integration_member_view(integration: Integration) -> dict[str, Any]:
    """What a member needs to connect their own account and read their scripts' errors."""
    return {
        "key": integration.key,
        "name": integration.name,
        "auth_mode": integration.auth_mode,
        "catalog_key": integration.catalog_key,
        "credential_fields": list(integration.credential_fields or []),
        "accounts_per_user": integration.accounts_per_user,
        "parameters": [
            {"name": p.get("name"), "label": p.get("label")} for p in integration.parameters or []
        ],
    }
