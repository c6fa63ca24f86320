"""An integration's extra headers and query parameters, sent with every request.

An admin may put a static secret there (an API version key, a tenant token), so the values
are kept encrypted in `defaults_enc` and are write-only: the plain JSON columns keep only
the names, and views show each value masked.

A value that looks like a secret is also redacted from what the upstream echoes back
(`secret_values`). Not every value: most are public words (`Accept: application/json`,
`X-GitHub-Api-Version: 2022-11-28`) that a service's answers hold for their own reasons,
and redacting those would garble the answer a script reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from app.integrations.vault import Vault
from app.models import Integration

MASKED = "••••••"
# A name that says its value is a credential, as in X-Api-Key, tenant_token, Auth-Signature.
_SECRET_NAME = re.compile(r"key|token|secret|auth|pass|sig|session|cookie|credential", re.I)
# A value shaped like a generated key: long, one unbroken word, letters and digits mixed.
_KEY_LENGTH = 16


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


def secret_values(headers: Mapping[str, str], query: Mapping[str, str]) -> Iterator[str]:
    """The default values to redact from answers: those named like a credential, and
    those shaped like a generated key, whatever their name."""
    for name, value in (*headers.items(), *query.items()):
        if looks_secret(name, value):
            yield value


def looks_secret(name: str, value: str) -> bool:
    """Whether a default value is taken for a credential: named like one, or shaped like a
    generated key whatever its name."""
    return bool(_SECRET_NAME.search(name)) or _key_shaped(value)


def _key_shaped(value: str) -> bool:
    return (
        len(value) >= _KEY_LENGTH
        and not any(c.isspace() for c in value)
        and any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
    )
