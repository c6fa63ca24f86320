"""The one outbound transport: every HTTP request of the server dials only allowed addresses.

Script calls, OAuth code exchange, token refresh, revocation, client credentials and
Test connection all go through `guarded_session`. Names are resolved here, every
resolved address is normalised and checked, and only a checked address is dialled (no
DNS-rebinding window between check and connect). Public addresses are allowed; private,
loopback and LAN ones only where the operator's PRIVATE_NETWORK_ALLOW covers address and
port; link-local and cloud metadata addresses never. Proxy variables and netrc are ignored.
A call made under a `deadlines.Deadline` waits for a name lookup only until the deadline
(`lookups`) and holds its connections while they are out of their pool, so the deadline can
cut them; an answer got under a `body_caps.BodyCap` is read only up to that cap.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from app.config import NEVER_REACHABLE, NOT_GLOBALLY_REACHABLE, NetworkAllow
from app.integrations.body_caps import current_cap
from app.integrations.deadlines import Deadline, DeadlinePassed, current_deadline
from app.integrations.lookups import LookupTimedOut, getaddrinfo

if TYPE_CHECKING:
    from urllib3._base_connection import BaseHTTPConnection

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA_NAMES = frozenset({"metadata.google.internal", "metadata", "instance-data"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NUMERIC_V4 = re.compile(r"^[0-9a-fA-Fx.]+$")
# What a PrivateAddress names as the address of a metadata service refused by its name.
METADATA_SERVICE = "a cloud metadata service"


class PrivateAddress(OSError):
    """The destination resolves to an address the server may not dial; `.address` says which."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} resolves to {address}, which is not allowed")
        self.host = host
        self.address = address


def normalised(address: str) -> IPAddress:
    """An IP address in its one canonical form: IPv4 inside IPv6 (mapped, 6to4, NAT64) unwrapped."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def globally_reachable(ip: IPAddress) -> bool:
    """True for a public address: in none of the special-purpose networks the server's own
    list names (NOT_GLOBALLY_REACHABLE), and global and unreserved to Python's tables too."""
    if any(ip in network for network in NOT_GLOBALLY_REACHABLE):
        return False
    return ip.is_global and not ip.is_reserved


def canonical_host(host: str) -> str:
    """A URL host in one spelling: IPv4 in any notation (2130706433, 0177.0.0.1, 127.1) as
    dotted quad, IPv6 compressed, names lowercased without a trailing dot."""
    host = host.strip("[]").lower().rstrip(".")
    if ":" in host:
        try:
            return str(normalised(host))
        except ValueError:
            return host
    if _NUMERIC_V4.match(host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return host
    return host


def private_literal(url: str) -> bool:
    """True for a URL on localhost or a non-public IP address, written as such."""
    try:
        host = canonical_host(urlsplit(url).hostname or "") if "://" in url else ""
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return not globally_reachable(normalised(host))
    except ValueError:
        return False


def secure_url(url: str) -> bool:
    """True for https, and for plain http on localhost or a private IP address (a service on
    the server's own network, reachable only where PRIVATE_NETWORK_ALLOW says)."""
    scheme = urlsplit(url).scheme.lower()
    return scheme == "https" or (scheme == "http" and private_literal(url))


def address_allowed(address: str, port: int, allow: Iterable[NetworkAllow]) -> bool:
    """True when the server may dial this address and port."""
    ip = normalised(address)
    if any(ip in network for network in NEVER_REACHABLE):
        return False
    if globally_reachable(ip):
        return True
    return any(rule.covers(ip, port) for rule in allow)


def allowed_addresses(host: str, port: int, allow: Iterable[NetworkAllow]) -> list[str]:
    """The addresses `host` resolves to, when the server may dial every one of them.

    Raises PrivateAddress naming the first refused one (a metadata name is refused before
    any lookup), socket.gaierror when the name does not resolve, and LookupTimedOut when a
    current Deadline passes before the resolver answers. Connections dial only what this
    returned; a form that stores a URL (a webhook endpoint) asks it too, so an address
    every connect would refuse is said when the URL is typed.
    """
    host = host.strip("[]")
    if canonical_host(host) in _METADATA_NAMES:
        raise PrivateAddress(host, METADATA_SERVICE)
    infos = getaddrinfo(host, port)
    addresses = [str(info[4][0]) for info in infos]
    for address in addresses:
        # Every address must pass, not just the first: the resolver's order may change.
        if not address_allowed(address, port, allow):
            raise PrivateAddress(host, address)
    return addresses


def never_reachable(refused: PrivateAddress) -> bool:
    """True when no PRIVATE_NETWORK_ALLOW could admit the refused address (link-local,
    metadata and the other NEVER_REACHABLE networks)."""
    try:
        ip = normalised(refused.address)
    except ValueError:
        return True  # a metadata name
    return any(ip in network for network in NEVER_REACHABLE)


class _Checked:
    """Mixin for urllib3 connections: resolve, check every address, dial a checked one."""

    allow: Sequence[NetworkAllow] = ()
    deadline: Deadline | None = None  # the one holding it, while it is out of its pool
    _dns_host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any
    sock: socket.socket | None

    def _new_conn(self) -> socket.socket:
        host = self._dns_host.strip("[]")
        try:
            addresses = allowed_addresses(host, self.port, self.allow)
        except socket.gaierror as exc:
            raise NewConnectionError(self, f"cannot resolve {host}: {exc}") from exc  # type: ignore[arg-type]
        except LookupTimedOut as exc:
            # A connect timeout to urllib3 and requests: the callers' timeout words apply.
            raise ConnectTimeoutError(self, str(exc)) from None
        last: OSError | None = None
        for address in addresses:
            try:
                sock = urllib3_connection.create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as exc:
                last = exc
                continue
            deadline = current_deadline()
            if deadline is not None:
                deadline.hold(self, sock)
            return sock
        raise NewConnectionError(self, f"cannot connect to {host}: {last}")  # type: ignore[arg-type]


class _HeldPool(HTTPConnectionPool):
    """A pool whose connections the caller's Deadline holds while they are out of it."""

    def _get_conn(self, timeout: float | None = None) -> BaseHTTPConnection:
        conn = super()._get_conn(timeout)
        deadline = current_deadline()
        # A kept-alive connection; a new one is held when its socket is made (_new_conn).
        if deadline is not None and isinstance(conn, _Checked) and conn.sock is not None:
            deadline.hold(conn, conn.sock)
        return conn

    def _put_conn(self, conn: BaseHTTPConnection | None) -> None:
        # Let go before another caller can take it: a late cut must not end their call.
        if isinstance(conn, _Checked) and conn.deadline is not None:
            conn.deadline.let_go(conn)
        super()._put_conn(conn)


def _pool_classes(allow: Sequence[NetworkAllow]) -> dict[str, type]:
    rules = {"allow": tuple(allow)}
    http_conn = type("GuardedHTTPConnection", (_Checked, HTTPConnection), rules)
    https_conn = type("GuardedHTTPSConnection", (_Checked, HTTPSConnection), rules)
    http_pool = type("GuardedHTTPPool", (_HeldPool,), {"ConnectionCls": http_conn})
    https_pool = type(
        "GuardedHTTPSPool", (_HeldPool, HTTPSConnectionPool), {"ConnectionCls": https_conn}
    )
    return {"http": http_pool, "https": https_pool}


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections only dial allowed addresses."""

    def __init__(self, *, allow: Sequence[NetworkAllow], **kwargs: Any) -> None:
        self._classes = _pool_classes(allow)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._classes
        self.poolmanager.key_fn_by_scheme = dict(self.poolmanager.key_fn_by_scheme)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send; under a Deadline, with no connect or read timeout longer than its time left;
        under a BodyCap, the answer's body read only up to the cap."""
        deadline = current_deadline()
        if deadline is not None:
            left = deadline.left()
            if left <= 0:
                raise DeadlinePassed(f"no time left of {deadline.seconds:g} s", request=request)
            if isinstance(timeout, tuple):
                timeout = (min(timeout[0], left), min(timeout[1] or left, left))
            else:
                timeout = min(timeout or left, left)
        response = super().send(request, stream, timeout, verify, cert, proxies)
        cap = current_cap()
        return response if cap is None else cap.apply(response)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """Never: a proxy would dial for us, past the address check."""
        raise requests.exceptions.InvalidProxyURL("proxies are not used for outbound calls")


def guarded_session(*, allow: Sequence[NetworkAllow] = ()) -> requests.Session:
    """A requests Session that dials public addresses and the operator's allowed ones only."""
    session = requests.Session()
    session.trust_env = False  # no proxies or netrc from the server's environment
    adapter = GuardedAdapter(allow=allow, pool_maxsize=32)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def refused_address(exc: BaseException) -> PrivateAddress | None:
    """The PrivateAddress refusal inside a requests/urllib3 exception chain, if any."""
    seen: set[int] = set()
    pending: list[Any] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, PrivateAddress):
            return current
        pending.extend(current.args)
        pending.extend(
            (getattr(current, "reason", None), current.__cause__, current.__context__)
        )
    return None
