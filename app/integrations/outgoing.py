"""The outgoing request of a script call: headers, query and body, with the credential placed.

Scripts may not set the credential's own header or query parameter, nor the headers that
reroute a request; the server places the credential by the integration's templates and
remembers every secret it placed so the answer can be redacted (app.integrations.redaction).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from app.integrations import destinations
from app.integrations.defaults import defaults_of, secret_values
from app.integrations.destinations import DestinationRefused
from app.integrations.placements import place_credentials, placed_secrets, placements_of
from app.integrations.vault import Vault
from app.models import Integration
from sandbox import HostCallError

# Stored credential fields that are not secret: redacting "Bearer" or a scope list from
# every answer would garble it and protect nothing.
NOT_SECRET = frozenset({"username", "token_type", "scope"})
# A header name as HTTP defines it (RFC 9110 token): no spaces, tabs or other characters a
# lenient server might trim until the name matches the credential's own.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


@dataclass
class Outgoing:
    """Headers and query pairs to send, the query names the answer's URL loses (the
    credential's and the integration's defaults') and the secrets placed."""

    headers: dict[str, str]
    params: list[tuple[str, str]]
    credential_query: set[str] = field(default_factory=set)
    secrets: list[str] = field(default_factory=list)


def outgoing(
    integration: Integration,
    args: Mapping[str, Any],
    creds: Mapping[str, str],
    parameters: Mapping[str, str],
    *,
    vault: Vault,
    url: str = "",
) -> Outgoing:
    """The script's headers and params (and the query it wrote into `url`, the request's
    URL) checked, the integration's defaults added, and the credential placed."""
    placements = placements_of(integration)
    guarded_headers = set(destinations.ALWAYS_CREDENTIAL_HEADERS)
    guarded_query: set[str] = set()
    for placement in placements:
        if placement.get("location") == "header" and placement.get("name"):
            guarded_headers.add(str(placement["name"]).lower())
        elif placement.get("location") == "query" and placement.get("name"):
            guarded_query.add(str(placement["name"]))
    headers: dict[str, str] = {}
    raw_headers = args.get("headers") or {}
    if not isinstance(raw_headers, Mapping):
        raise HostCallError("invalid_request", "headers must be a dict of strings")
    default_headers, default_query = defaults_of(integration, vault)
    for name, value in {**default_headers, **raw_headers}.items():
        name_s, value_s = str(name), str(value)
        destinations.check_text(name_s, "a header name")
        destinations.check_text(value_s, "a header value")
        lowered = name_s.lower()
        if name in raw_headers:
            _check_header(name_s, value_s)
            destinations.check_header_name(name_s)
            if lowered in guarded_headers:
                raise DestinationRefused(
                    f"scripts may not set the {name_s} header: the server "
                    "adds the credential itself"
                )
        if lowered in destinations.HOP_BY_HOP:
            continue
        headers[name_s] = value_s
    params = destinations.clean_params(args.get("params"))
    written = [name for name, _value in parse_qsl(urlsplit(url).query, keep_blank_values=True)]
    _refuse_credential_query([*written, *(name for name, _value in params)], guarded_query)
    params.extend((str(k), str(v)) for k, v in default_query.items())
    placed_headers, placed_params = place_credentials(placements, creds, parameters)
    headers.update(placed_headers)
    params.extend(placed_params)
    secrets = [str(v) for k, v in creds.items() if k not in NOT_SECRET]
    secrets.extend(placed_secrets(placed_headers, placed_params))
    secrets.extend(secret_values(default_headers, default_query))
    # The answer's URL loses the default query parameters too: their values are sealed
    # (admins see them masked), and the URL sent holds them.
    return Outgoing(headers, params, guarded_query | set(default_query), secrets)


def _check_header(name: str, value: str) -> None:
    if not _HEADER_NAME.fullmatch(name):
        raise HostCallError(
            "invalid_request",
            f"{name!r} is not a header name: letters, digits and !#$%&'*+-.^_`|~ only",
        )
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise HostCallError(
            "invalid_request",
            f"the {name} header holds characters HTTP headers cannot carry; encode them"
            " (for example percent-encoding or base64) as the service expects",
        ) from None


def _refuse_credential_query(names: Iterable[str], guarded: set[str]) -> None:
    """A query parameter named like the credential's, in any case: an upstream that reads
    the first of two, or ignores case, would take the script's value for the account's."""
    refused = {name.lower() for name in guarded}
    for name in names:
        if name.lower() in refused:
            raise DestinationRefused(
                f"scripts may not set the {name} query parameter: the "
                "server adds the credential itself"
            )


def body_of(args: Mapping[str, Any]) -> dict[str, Any]:
    """The request body as requests keyword arguments (json or data)."""
    if args.get("json") is not None:
        return {"json": args["json"]}
    if args.get("data_b64") is not None:
        try:
            return {"data": base64.b64decode(str(args["data_b64"]), validate=True)}
        except ValueError:
            raise HostCallError("invalid_request", "data is not valid") from None
    data = args.get("data")
    if data is None:
        return {}
    if isinstance(data, str):
        return {"data": data.encode()}
    if isinstance(data, Mapping):
        return {"data": {str(k): str(v) for k, v in data.items()}}
    raise HostCallError("invalid_request", "data must be text, bytes or a dict")
