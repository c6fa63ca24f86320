"""Outbound network settings: the private destinations an operator allows for calls, and
the addresses never dialled whatever they say."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from app.config.rules import ConfigError

DEFAULTS: dict[str, Any] = {
    # Private, loopback and LAN destinations the operator allows for outbound calls:
    # CIDRs with optional ports, e.g. "10.0.0.0/8, 127.0.0.1/32:8080, [fd00::/8]:443-444".
    # Empty: only public addresses. Link-local and cloud metadata stay refused regardless.
    "PRIVATE_NETWORK_ALLOW": (),
}

# Never dialled, whatever PRIVATE_NETWORK_ALLOW says: link-local (where every cloud's
# metadata service lives), the other metadata addresses, "this host" (0.0.0.0 dials
# loopback), multicast and broadcast. Owned here so the operator's list is checked
# against it at start; app.integrations.transport enforces it on every connect.
NEVER_REACHABLE = tuple(
    ipaddress.ip_network(net)
    for net in (
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::254/128",  # AWS instance metadata over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "0.0.0.0/8",
        "::/128",
        "224.0.0.0/4",
        "ff00::/8",
        "255.255.255.255/32",
    )
)


# Not globally reachable, from IANA's special-purpose address registries (IPv4 and IPv6,
# RFC 6890 and successors) and the address-space registries (reserved, multicast): outside
# PRIVATE_NETWORK_ALLOW these are refused like private ones. Listed here, not taken from
# Python's ipaddress tables alone, because those differ by version: 3.11.7 calls
# 192.0.0.8 and fec0::1 global. The transport refuses what this list or `is_global` says.
NOT_GLOBALLY_REACHABLE = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT shared space
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments (whole /24: its two anycast /32s are
        # PCP and TURN, nothing a script or a webhook calls over HTTP)
        "192.0.2.0/24",  # documentation TEST-NET-1
        "192.88.99.0/24",  # deprecated 6to4 relay anycast (RFC 7526)
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation TEST-NET-2
        "203.0.113.0/24",  # documentation TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved (and 255.255.255.255, limited broadcast)
        "::/96",  # unspecified, loopback and deprecated IPv4-compatible addresses
        "::ffff:0:0/96",  # IPv4-mapped (the transport unwraps these and checks the IPv4)
        "64:ff9b:1::/48",  # local-use IPv4/IPv6 translation
        "100::/64",  # discard-only
        "100:0:0:1::/64",  # dummy prefix
        "2001::/32",  # Teredo (tunnels to an embedded IPv4 address)
        "2001:2::/48",  # benchmarking
        "2001:10::/28",  # deprecated ORCHID
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "5f00::/16",  # segment routing (SRv6) SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
    )
)


@dataclass(frozen=True)
class NetworkAllow:
    """One entry of PRIVATE_NETWORK_ALLOW: a network and, optionally, a port range."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    ports: tuple[int, int] | None = None

    def covers(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> bool:
        """True when the address is in the network and the port in the range (if any)."""
        if address.version != self.network.version or address not in self.network:
            return False
        return self.ports is None or self.ports[0] <= port <= self.ports[1]

    def __str__(self) -> str:
        ports = "" if self.ports is None else f":{self.ports[0]}"
        if self.ports is not None and self.ports[1] != self.ports[0]:
            ports += f"-{self.ports[1]}"
        net = f"[{self.network}]" if ports and self.network.version == 6 else str(self.network)
        return net + ports


def parse_network_allow(value: Any) -> tuple[NetworkAllow, ...]:
    """PRIVATE_NETWORK_ALLOW as entries; a list, or text separated by commas or spaces."""
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    entries: list[NetworkAllow] = []
    for item in value or ():
        if isinstance(item, NetworkAllow):
            entries.append(item)
            continue
        entries.append(_network_entry(str(item).strip()))
    return tuple(entries)


def _network_entry(text: str) -> NetworkAllow:
    problem = ConfigError(
        f"SCRIPTBOX_PRIVATE_NETWORK_ALLOW: {text!r} is not a CIDR with an optional port or "
        "port range (10.0.0.0/8, 127.0.0.1/32:8080, [fd00::/8]:443)"
    )
    network_text, ports_text = text, ""
    if text.startswith("["):
        network_text, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise problem
        ports_text = rest[1:]
    elif text.count(":") == 1:
        network_text, _, ports_text = text.partition(":")
    try:
        network = ipaddress.ip_network(network_text, strict=False)
    except ValueError:
        raise problem from None
    ports: tuple[int, int] | None = None
    if ports_text:
        first, _, last = ports_text.partition("-")
        if not (first.isdigit() and (not last or last.isdigit())):
            raise problem
        ports = (int(first), int(last or first))
        if not 0 < ports[0] <= ports[1] <= 65535:
            raise problem
    return NetworkAllow(network, ports)


def validate(config: Any) -> None:
    """Refuse an allowed network that lies in one never reachable."""
    for entry in config["PRIVATE_NETWORK_ALLOW"]:
        for never in NEVER_REACHABLE:
            if entry.network.version == never.version and entry.network.subnet_of(never):
                raise ConfigError(
                    f"SCRIPTBOX_PRIVATE_NETWORK_ALLOW: {entry} lies in {never}, which is never "
                    "reachable (link-local, cloud metadata, this-host or multicast addresses)"
                )
