"""Where an account's credentials go: an integration's placements filled into headers, query
pairs or HTTP Basic auth. One owner for script calls and credential checks alike."""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from app.integrations.catalog_entry import default_placements, placement_dict
from app.models import Integration
from sandbox import HostCallError


def placements_of(integration: Integration) -> list[dict[str, Any]]:
    """The integration's placements, or the catalog's default for its auth mode."""
    return list(integration.placements or []) or [
        placement_dict(p) for p in default_placements(integration.auth_mode)
    ]


def fill(template: str, values: Mapping[str, str]) -> str:
    """A placement template with the account's values; a missing one is a clear error."""
    try:
        return template.format_map(dict(values))
    except (KeyError, ValueError, IndexError) as exc:
        raise HostCallError(
            "integration_unavailable", f"the integration's credential template needs {exc}"
        ) from None


def place_credentials(
    placements: list[dict[str, Any]], creds: Mapping[str, str], parameters: Mapping[str, str]
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The headers and query pairs that carry an account's credentials."""
    values = {**parameters, **creds}
    if "access_token" in creds:
        values["token"] = creds["access_token"]
    headers: dict[str, str] = {}
    params: list[tuple[str, str]] = []
    for placement in placements:
        location = placement.get("location")
        value = fill(str(placement.get("template", "")), values)
        if location == "header":
            headers[str(placement["name"])] = value
        elif location == "query":
            params.append((str(placement["name"]), value))
        elif location == "basic":
            password = fill(str(placement.get("password_template") or ""), values)
            pair = base64.b64encode(f"{value}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {pair}"
    return headers, params


def placed_secrets(headers: Mapping[str, str], params: Iterable[tuple[str, str]]) -> list[str]:
    """The credential values placed in a request, as an upstream's echo may hold them: each
    one, and of a Basic header the pair alone and the "user:password" it encodes (not when
    an admin's own "Basic {key}" template holds no base64: the key itself is there)."""
    secrets = [*headers.values(), *(value for _name, value in params)]
    for value in headers.values():
        if value.startswith("Basic "):
            pair = value.removeprefix("Basic ")
            secrets.append(pair)
            with contextlib.suppress(binascii.Error, ValueError):
                secrets.append(base64.b64decode(pair).decode("utf-8", "replace"))
    return secrets
