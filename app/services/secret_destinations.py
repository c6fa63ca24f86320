"""Where a person's secret goes when they connect an account, for the page that asks for it.

An admin sets an integration's origins (credential_origins.py), so an admin may point them
at a server of their own; the person typing an API key, or pressing the button that sends
them to sign in, must see where it goes before they act, as a browser's address bar shows
where a page comes from. Read only: nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.integrations.catalog_entry import CREDENTIAL_MODES
from app.integrations.destinations import DestinationRefused, fill_parameters
from app.models import Integration
from app.services.credential_origins import origin_text, secret_origins


@dataclass(frozen=True)
class SecretDestination:
    """`sign_in_at`: the origin of the OAuth authorization URL (None for other modes);
    `used_at`: the origins (scheme://host[:port]) the credential is sent to, the base
    URL's first."""

    sign_in_at: str | None
    used_at: tuple[str, ...]


def where_secrets_go(
    integration: Integration, typed: Mapping[str, str] | None = None
) -> SecretDestination | None:
    """Where connecting an account of `integration` sends the person and their secret;
    None for a mode that asks a person for nothing (no credentials, client credentials).

    `typed` holds the form's values (`param_<name>`): a base URL's `{parameter}` shows
    filled with them when every parameter was typed, and as its template otherwise."""
    oauth = integration.auth_mode == "oauth2"
    if not oauth and integration.auth_mode not in CREDENTIAL_MODES:
        return None
    parameters = _typed_parameters(integration, typed or {})

    def fill(url: str) -> str:
        try:
            return fill_parameters(url, parameters) if parameters else url
        except DestinationRefused:  # a placeholder no parameter declares: as written
            return url

    # The origins as credential_origins compares them (its rules, paths dropped); no
    # auth_mode, so an OAuth integration's token and revoke URLs are left out: the
    # member's token goes to the API, not there.
    base_url = fill(integration.base_url or "")
    used = secret_origins(
        {"base_url": base_url, "allowed_hosts": list(integration.allowed_hosts or [])}
    )
    base = origin_text(base_url)
    sign_in_at = None
    if oauth and integration.authorization_url:
        sign_in_at = origin_text(fill(integration.authorization_url))
    # The base URL's first (the API itself), then the allowed hosts'.
    used_at = tuple(sorted(used, key=lambda origin: (origin != base, origin)))
    return SecretDestination(sign_in_at=sign_in_at, used_at=used_at)


def _typed_parameters(integration: Integration, typed: Mapping[str, str]) -> dict[str, str]:
    """The parameter values typed, when every one was ({} otherwise: shown as templates)."""
    values = {
        p["name"]: str(typed.get(f"param_{p['name']}", "")).strip()
        for p in integration.parameters or []
    }
    return values if values and all(values.values()) else {}
