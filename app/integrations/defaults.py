"""An integration's extra headers and query parameters, sent with every request.

An admin may put a static secret there (an API version key, a tenant token), so the values
are kept encrypted in `defaults_enc` and are write-only: the plain JSON columns keep only
the names, and views show each value masked.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.integrations.vault import Vault
from app.models import Integration

MASKED = "••••••"


def defaults_of(integration: Integration, vault: Vault) -> tuple[dict[str, str], dict[str, str]]:
    """The (headers, query) an integration adds to every request, decrypted."""
    if integration.defaults_enc:
        sealed = vault.decrypt_json(integration.defaults_enc)
        return dict(sealed.get("headers") or {}), dict(sealed.get("query") or {})
    # Rows written before values were sealed hold them in the plain columns.
    return dict(integration.default_headers or {}), dict(integration.default_query or {})


def seal_defaults(
    integration: Integration,
    vault: Vault,
    *,
    headers: Mapping[str, str],
    query: Mapping[str, str],
) -> None:
    """Store the values encrypted; the plain columns keep the names only."""
    integration.defaults_enc = (
        vault.encrypt_json({"headers": dict(headers), "query": dict(query)})
        if headers or query
        else None
    )
    integration.default_headers = {name: "" for name in headers}
    integration.default_query = {name: "" for name in query}


def masked(values: Mapping[str, str] | None) -> dict[str, str]:
    """Names with their values masked, for views."""
    return {name: MASKED for name in values or {}}
