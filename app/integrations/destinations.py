"""Where a script's request may go: URL building under the base URL and origin rules.

A credential goes only to its integration's origins (scheme, host, port and base path)
for relative paths, absolute URLs and every redirect hop alike. Every refusal raises
DestinationRefused (script error `forbidden_destination`) with a message saying what to
change. Which addresses may be dialled is checked at connect time, on the address
actually dialled, by app.integrations.transport.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode, urljoin, urlsplit, urlunsplit

from app.integrations.catalog_entry import routing_header
from app.integrations.transport import canonical_host

ALLOWED_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"})
DEFAULT_PORTS = {"http": 80, "https": 443}
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


class DestinationRefused(Exception):
    """The request would leave the integration's origins, reach an address the server may
    not dial, or set the credential itself; `.url` is the refused target, when known."""

    code = "forbidden_destination"

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


def check_header_name(name: str) -> str:
    """Refuse the headers that reroute a request (Host, Forwarded, X-Forwarded-*)."""
    if routing_header(name):
        raise DestinationRefused(
            f"scripts may not set the {name} header: the server addresses the request itself"
        )
    return name


def check_text(value: str, what: str) -> str:
    """Refuse CR, LF and NUL anywhere in a URL part or header."""
    if _CONTROL.search(value):
        raise DestinationRefused(f"{what} contains a line break or NUL character")
    return value


@dataclass(frozen=True)
class Origin:
    """Where a credential may go: scheme, host, port and a path prefix ('' for any path)."""

    scheme: str
    host: str
    port: int
    path: str = ""

    @classmethod
    def of(cls, url: str) -> Origin:
        """The origin and path prefix of an absolute http(s) URL."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.hostname:
            raise DestinationRefused(f"{url!r} is not an absolute http(s) URL")
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError:
            raise DestinationRefused(f"{url!r} has an invalid port") from None
        path = posixpath.normpath(unquote(parts.path)) if parts.path.strip("/") else ""
        return cls(scheme, canonical_host(parts.hostname), port, path.rstrip("/"))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{host}{port}{self.path}"

    def admits(self, target: Origin) -> bool:
        """True for the same scheme, host and port, and a path at or below this one's."""
        return (
            (self.scheme, self.host, self.port) == (target.scheme, target.host, target.port)
            and (
                not self.path
                or target.path == self.path
                or target.path.startswith(self.path + "/")
            )
        )


def allowed_origins(base_url: str, allowed_hosts: Iterable[str]) -> list[Origin]:
    """The integration's base (with its base path) and its allowed origins.

    An `allowed_hosts` entry is an origin, optionally with a path
    (https://uploads.example.com/v1); a bare host name means the base URL's scheme and
    that scheme's default port. An http entry is ignored for an https base: a credential
    never goes from https to plain http.
    """
    base = Origin.of(base_url)
    origins = [base]
    for entry in allowed_hosts:
        text = str(entry).strip()
        if not text:
            continue
        if "://" in text:
            origin = Origin.of(text)
        else:
            origin = Origin(base.scheme, canonical_host(text), DEFAULT_PORTS[base.scheme])
        if base.scheme == "https" and origin.scheme != "https":
            continue
        origins.append(origin)
    return origins


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
        return check_destination(path, allowed_origins(base, allowed_hosts))
    raw_path, _, query = path.partition("?")
    query = query.partition("#")[0]
    base_path = base_parts.path.rstrip("/")
    normalized = _normalized_path(base_path, raw_path)
    if base_path and not (normalized == base_path or normalized.startswith(base_path + "/")):
        raise DestinationRefused(
            f"the path leaves the integration's base path {base_path}; use a path below it",
            url=urlunsplit((base_parts.scheme, base_parts.netloc, normalized, "", "")),
        )
    if not base_path and normalized.startswith("/.."):
        raise DestinationRefused("the path leaves the integration's base URL")
    encoded = quote(normalized or "/", safe="/:@!$&'()*+,;=-._~")
    return urlunsplit((base_parts.scheme, base_parts.netloc, encoded, query, ""))


def _normalized_path(base_path: str, raw_path: str) -> str:
    lowered = raw_path.lower()
    if any(code in lowered for code in ("%2f", "%5c", "%2e", "%00")):
        # An encoded '/', '\\' or '.' could be decoded differently by the service.
        raise DestinationRefused("encoded '/', '\\' or '.' are not allowed in the path")
    decoded = unquote(raw_path)
    normalized = posixpath.normpath(f"{base_path}/{decoded.lstrip('/')}") if decoded else base_path
    if raw_path.endswith("/") and not normalized.endswith("/"):
        normalized += "/"
    return normalized


def check_destination(url: str, origins: Sequence[Origin]) -> str:
    """The URL (path normalised) if it lies within one of the origins; else refused."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in DEFAULT_PORTS:
        raise DestinationRefused("only http and https URLs are allowed")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise DestinationRefused("URLs with user information (user@host) are not allowed")
    path = _normalized_path("", parts.path)
    target = Origin.of(urlunsplit((parts.scheme, parts.netloc, path, "", "")))
    if not any(origin.admits(target) for origin in origins):
        raise DestinationRefused(
            f"{target} is outside the integration's origins "
            f"({', '.join(str(o) for o in origins)}); an admin can add its origin to the "
            "integration's allowed hosts",
            url=url,
        )
    encoded = quote(path or "/", safe="/:@!$&'()*+,;=-._~")
    return urlunsplit((parts.scheme, parts.netloc, encoded, parts.query, ""))


def origin_of(url: str) -> str:
    """Only the scheme, host and port of a URL ('' when it has none)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return ""
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}{port}"


def check_redirect(location: str, current: str, origins: Sequence[Origin]) -> str:
    """The absolute next hop of a redirect, if it stays within the integration's origins."""
    check_text(location, "the redirect")
    next_url = urljoin(current, location)
    if urlsplit(current).scheme == "https" and urlsplit(next_url).scheme != "https":
        raise DestinationRefused(
            "the service redirected from https to plain http; the credential is not sent there",
            url=next_url,
        )
    return check_destination(next_url, origins)


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
    elif isinstance(params, list) and all(
        isinstance(pair, (list, tuple)) and len(pair) == 2 for pair in params
    ):
        items = [tuple(pair) for pair in params]
    else:
        raise DestinationRefused("params must be a dict or a list of [name, value] pairs")
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
    """The URL's origin and path with query values dropped (for the call log)."""
    parts = urlsplit(url)
    names = [pair.split("=", 1)[0] for pair in parts.query.split("&") if pair]
    origin = f"{parts.scheme}://{parts.hostname or ''}" if parts.scheme else ""
    try:
        port = parts.port
    except ValueError:  # not a port: the URL is refused; its log names the rest
        port = None
    if origin and port is not None:
        origin += f":{port}"
    return origin + parts.path + (("?" + "&".join(f"{n}=" for n in names)) if names else "")


def encode_query(pairs: list[tuple[str, str]]) -> str:
    """Pairs as a query string."""
    return urlencode(pairs)
