"""Refusing, when a URL is saved, an address the outbound guard would refuse on every call
to it: webhook endpoints (any address the operator does not allow) and integrations' URLs
(only the never-reachable ones) ask this one check, which asks the transport's guard."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from app.config import NetworkAllow
from app.errors import ValidationError
from app.integrations import transport
from app.integrations.deadlines import Deadline
from app.integrations.transport import PrivateAddress

# Every network: under it the guard refuses only what no operator can allow (link-local,
# cloud metadata, this-host addresses). Integrations reach private networks only where the
# operator's PRIVATE_NETWORK_ALLOW says so at call time, so saving one is not refused.
NEVER_REACHABLE_ONLY: tuple[NetworkAllow, ...] = (
    NetworkAllow(ipaddress.ip_network("0.0.0.0/0")),
    NetworkAllow(ipaddress.ip_network("::/0")),
)


def check_address(
    url: str, *, field: str, whose: str, allow: Sequence[NetworkAllow], lookup_s: float
) -> None:
    """Refuse (a 400 naming `field`) a URL whose host resolves now to an address the guard
    would not dial under `allow`. A host not resolvable yet (DNS to come, or no answer within
    `lookup_s`), or one with a {placeholder}, passes: each call checks again and says so."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return  # the URL's own validator names what is wrong with it
    if not parts.hostname or "{" in parts.hostname:
        return
    try:
        with Deadline(lookup_s):
            transport.allowed_addresses(parts.hostname, port, allow)
    except PrivateAddress as refused:
        raise ValidationError(_refusal_words(refused, field, whose), field=field) from None
    except (OSError, UnicodeError):
        pass


def _refusal_words(refused: PrivateAddress, field: str, whose: str) -> str:
    if transport.never_reachable(refused):
        kind = (
            "a link-local or cloud metadata address, which the server never sends to; use "
            f"{whose} public address"
        )
    else:
        kind = (
            "a private or loopback address this server may not send to; use "
            f"{whose} public https address, or ask the server's operator to allow that "
            "network in SCRIPTBOX_PRIVATE_NETWORK_ALLOW"
        )
    if refused.host == refused.address:
        return f"{field}: {refused.host} is {kind}"
    if refused.address == transport.METADATA_SERVICE:
        return (
            f"{field}: {refused.host} is {refused.address}, which the server never sends to; "
            f"use {whose} public address"
        )
    return f"{field}: {refused.host} is {refused.address}, {kind}"
