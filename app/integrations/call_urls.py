"""How the call log spells a call's URL: the query's names, never their values."""

from __future__ import annotations

from typing import Any

from app.integrations import destinations
from app.integrations.destinations import DestinationRefused
from app.models import Integration

# The call log's path column (CallLog.path) holds this many characters.
_LOGGED_CHARS = 1000


def logged_path(url_or_path: str) -> str:
    """A URL or a path as the call log keeps it: query names only, cut to the column."""
    return destinations.query_names_only(url_or_path)[:_LOGGED_CHARS]


def logged_url(url: str, params: list[tuple[str, str]]) -> str:
    """A call's URL with its query as the call log keeps it: the names, never the values."""
    separator = "&" if "?" in url else "?"
    query = separator + destinations.encode_query(params) if params else ""
    return logged_path(url + query)


def asked_for(integration: Integration, path: str, params: Any) -> str:
    """The call-log spelling of a call not sent yet: the full URL under the integration's
    base URL with the script's query names (as a sent call's row spells it, so a refused
    call reads like one), else the path as the script wrote it (a base URL that needs an
    account's parameters, a path the destination rules refuse)."""
    try:
        url = destinations.build_url(
            integration.base_url,
            path,
            parameters={},
            allowed_hosts=integration.allowed_hosts or [],
        )
        pairs = destinations.clean_params(params)
    except DestinationRefused:
        return logged_path(path)
    return logged_url(url, pairs)
