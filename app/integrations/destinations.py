"""Where a script's request may go: URL building under the base URL and destination rules.

Every refusal raises DestinationRefused (script error `forbidden_destination`) with a
message saying what to change. Private addresses are checked at connect time, on the
address actually dialled, for every hop (no DNS-rebinding window).
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import socket
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util import connection as urllib3_connection

ALLOWED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
ALWAYS_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_CONTROL = re.compile(r"[\r\n\x00]")
_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})


class DestinationRefused(Exception):
    """The request would leave the integration's hosts, reach a private address, or set
    the credential itself."""

    code = "forbidden_destination"


def check_text(value: str, what: str) -> str:
    """Refuse CR, LF and NUL anywhere in a URL part or header."""
    if _CONTROL.search(value):
        raise DestinationRefused(f"{what} contains a line break or NUL character")
    return value


def is_public(address: str) -> bool:
    """True for a globally routable unicast address (not private/loopback/link-local…)."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(ip.is_global and not ip.is_multicast and not ip.is_reserved)


def build_url(
    base_url: str,
    path: str,
    *,
    parameters: Mapping[str, str],
    allowed_hosts: Iterable[str],
) -> str:
    """The absolute URL for `path` under the integration's base URL (parameters filled)."""
    check_text(path, "the path")
    base = fill_parameters(base_url, parameters)
    base_parts = urlsplit(base)
    if path.startswith("//") or "\\" in path:
        raise DestinationRefused("the path must be relative to the integration's base URL")
    target = urlsplit(path)
    if target.scheme or target.netloc:
        return _absolute(path, base_parts.hostname or "", allowed_hosts)
    raw_path, _, query = path.partition("?")
    query = query.partition("#")[0]
    lowered = raw_path.lower()
    if any(code in lowered for code in ("%2f", "%5c", "%2e", "%00")):
        # An encoded '/', '\\' or '.' could be decoded differently by the service.
        raise DestinationRefused("encoded '/', '\\' or '.' are not allowed in the path")
    base_path = base_parts.path.rstrip("/")
    decoded = unquote(raw_path)
    normalized = posixpath.normpath(f"{base_path}/{decoded.lstrip('/')}") if decoded else base_path
    if base_path and not (normalized == base_path or normalized.startswith(base_path + "/")):
        raise DestinationRefused(
            f"the path leaves the integration's base path {base_path}; use a path below it"
        )
    if not base_path and normalized.startswith("/.."):
        raise DestinationRefused("the path leaves the integration's base URL")
    if raw_path.endswith("/") and not normalized.endswith("/"):
        normalized += "/"
    encoded = quote(normalized or "/", safe="/:@!$&'()*+,;=-._~")
    return urlunsplit((base_parts.scheme, base_parts.netloc, encoded, query, ""))


def _absolute(url: str, base_host: str, allowed_hosts: Iterable[str]) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise DestinationRefused("only http and https URLs are allowed")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise DestinationRefused("URLs with user information (user@host) are not allowed")
    host = (parts.hostname or "").lower()
    if host != base_host.lower() and host not in {h.lower() for h in allowed_hosts}:
        raise DestinationRefused(
            f"{host or 'that host'} is not one of the integration's hosts; an admin can add it "
            "to the integration's allowed hosts"
        )
    return url


def check_redirect(
    location: str, current: str, base_host: str, allowed_hosts: Iterable[str]
) -> str:
    """The absolute next hop of a redirect, if it stays on the integration's hosts."""
    check_text(location, "the redirect")
    from urllib.parse import urljoin

    return _absolute(urljoin(current, location), base_host, allowed_hosts)


def fill_parameters(template: str, parameters: Mapping[str, str]) -> str:
    """Fill `{name}` placeholders (values were validated against their patterns)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in parameters:
            raise DestinationRefused(f"the account has no value for the parameter {{{name}}}")
        return quote(str(parameters[name]), safe="")

    return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", replace, template)


def clean_params(params: Any) -> list[tuple[str, str]]:
    """Query parameters from a script as a list of pairs (values may be lists)."""
    if params is None:
        return []
    if isinstance(params, Mapping):
        items: list[tuple[Any, Any]] = list(params.items())
    elif isinstance(params, list):
        items = [tuple(pair) for pair in params]
    else:
        raise DestinationRefused("params must be a dict or a list of pairs")
    pairs: list[tuple[str, str]] = []
    for key, value in items:
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item is None:
                continue
            pairs.append(
                (check_text(str(key), "a query name"), check_text(_scalar(item), "a query value"))
            )
    return pairs


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def query_names_only(url: str) -> str:
    """The URL's path with query values dropped (for the call log)."""
    parts = urlsplit(url)
    names = [pair.split("=", 1)[0] for pair in parts.query.split("&") if pair]
    return parts.path + (("?" + "&".join(f"{n}=" for n in names)) if names else "")


def encode_query(pairs: list[tuple[str, str]]) -> str:
    """Pairs as a query string."""
    return urlencode(pairs)


# -- connecting only to allowed addresses -------------------------------------------------


class _Checked:
    """Mixin for urllib3 connections: resolve, check every address, dial a checked one."""

    allow_private = False
    _dns_host: str
    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        host = self._dns_host.strip("[]")
        if host.lower() in _METADATA_HOSTS and not self.allow_private:
            raise NewConnectionError(self, "refused: cloud metadata host")  # type: ignore[arg-type]
        try:
            infos = socket.getaddrinfo(host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise NewConnectionError(self, f"cannot resolve {host}: {exc}") from exc  # type: ignore[arg-type]
        addresses = [info[4][0] for info in infos]
        if not self.allow_private:
            blocked = [a for a in addresses if not is_public(str(a))]
            if blocked:
                raise PrivateAddress(f"{host} resolves to a private or local address")
        last: OSError | None = None
        for address in addresses:
            try:
                return urllib3_connection.create_connection(
                    (str(address), self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as exc:
                last = exc
        raise NewConnectionError(self, f"cannot connect to {host}: {last}")  # type: ignore[arg-type]


class PrivateAddress(OSError):
    """The destination resolves to an address scripts may not reach."""


def _pool_classes(allow_private: bool) -> dict[str, type]:
    http_conn = type(
        "CheckedHTTPConnection", (_Checked, HTTPConnection), {"allow_private": allow_private}
    )
    https_conn = type(
        "CheckedHTTPSConnection", (_Checked, HTTPSConnection), {"allow_private": allow_private}
    )
    http_pool = type("CheckedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn})
    https_pool = type("CheckedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn})
    return {"http": http_pool, "https": https_pool}


class CheckedAdapter(HTTPAdapter):
    """A requests adapter whose connections only dial allowed addresses."""

    def __init__(self, *, allow_private: bool, **kwargs: Any) -> None:
        self._classes = _pool_classes(allow_private)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._classes
        self.poolmanager.key_fn_by_scheme = dict(self.poolmanager.key_fn_by_scheme)


def checked_session(*, allow_private: bool) -> requests.Session:
    """A requests Session that refuses private destinations unless allowed."""
    session = requests.Session()
    session.trust_env = False  # no proxies or netrc from the server's environment
    adapter = CheckedAdapter(allow_private=allow_private, pool_maxsize=32)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
