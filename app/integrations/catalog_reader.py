"""Reading one raw catalog entry: typed reads whose errors name the entry and the field, the
collection of those errors (a form hears of every wrong field at once), and the checks of
templates and URLs that several fields share. Standard library only."""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit

PLACEHOLDER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HOST_RE = re.compile(r"(?=.{1,253}\Z)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]*")
HEADER_NAME_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
QUERY_NAME_RE = re.compile(r"[A-Za-z0-9._~-]+")
# A parameter inside a host must be followed by a fixed domain of at least two labels, so a
# connected account can pick its tenant but never point the credentials at another site.
HOST_SUFFIX_RE = re.compile(r"(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?){2,}")

T = TypeVar("T")


class CatalogError(ValueError):
    """Raised when the catalog file or one of its entries is malformed.

    `.field` is the entry's top-level field at fault (None for the file as a whole), `.path`
    the exact place inside it (e.g. placements[0].template) and `.problem` what is wrong.
    """

    def __init__(self, problem: str, *, entry: str | None = None, path: str | None = None) -> None:
        self.entry = entry
        self.path = path
        self.field = re.split(r"[.\[]", path, maxsplit=1)[0] if path else None
        self.problem = problem
        where = f"catalog entry {entry!r}: " if entry is not None else ""
        super().__init__(f"{where}{path + ': ' if path else ''}{problem}")


class EntryProblems(CatalogError):
    """Raised by validate_entry: the entry's first problem (its message, .field, .path and
    .problem, as a lone CatalogError would say it) and in .problems every problem found, the
    first per top-level field, in the order the checks met them."""

    def __init__(self, problems: list[CatalogError]) -> None:
        first = problems[0]
        super().__init__(first.problem, entry=first.entry, path=first.path)
        self.problems = tuple(problems)


class Problems:
    """The problems of one entry so far: a form shows every wrong field at once."""

    def __init__(self) -> None:
        self.by_field: dict[str, CatalogError] = {}

    def check(self, read: Callable[[], T], fallback: T, *, needs: tuple[str, ...] = ()) -> T:
        """read()'s value, or `fallback` with its CatalogError noted. Skipped (`fallback`)
        when a field it builds on failed: its verdict on a stand-in value would mislead."""
        if any(name in self.by_field for name in needs):
            return fallback
        try:
            return read()
        except CatalogError as exc:
            self.by_field.setdefault(exc.field or "", exc)
            return fallback


def template_fields(template: str) -> set[str]:
    """Return the placeholder names in template; raise ValueError unless each is a plain {name}."""
    names: set[str] = set()
    for _literal, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        # Only bare names: str.format would otherwise follow {token.attr} or {token[0]}.
        if not PLACEHOLDER_RE.fullmatch(name) or spec or conversion:
            raise ValueError(f"placeholder {{{name}}} must be a plain {{name}}")
        names.add(name)
    return names


class EntryReader:
    """Typed reads from one raw JSON object; every error names the entry and the field."""

    def __init__(self, key: str, raw: Mapping[str, Any], prefix: str = "") -> None:
        self.key = key
        self.raw = raw
        self.prefix = prefix

    def error(self, name: str, problem: str) -> CatalogError:
        """A CatalogError naming this entry and field."""
        return CatalogError(problem, entry=self.key, path=f"{self.prefix}{name}")

    def nested(self, prefix: str, raw: object) -> EntryReader:
        """A reader of a nested object (a placement, a parameter), its path prefixed."""
        if not isinstance(raw, Mapping):
            raise self.error(prefix, "must be a JSON object")
        return EntryReader(self.key, raw, f"{self.prefix}{prefix}.")

    def reject_unknown(self, known: frozenset[str]) -> None:
        """Refuse fields outside `known`."""
        unknown = sorted(set(self.raw) - known)
        if unknown:
            path = self.prefix.rstrip(".") if self.prefix else str(unknown[0])
            raise CatalogError(
                f"unknown field(s): {', '.join(map(str, unknown))}", entry=self.key, path=path
            )

    def text(self, name: str, default: str | None = None) -> str:
        """A non-empty string."""
        value = self.raw.get(name, default)
        if value is None:
            raise self.error(name, "is required")
        if not isinstance(value, str) or not value.strip():
            raise self.error(name, "must be a non-empty string")
        return value

    def choice(self, name: str, options: tuple[str, ...], default: str | None = None) -> str:
        """One of `options`."""
        value = self.text(name, default)
        if value not in options:
            raise self.error(name, f"unknown value {value!r}; expected one of {', '.join(options)}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        """true or false."""
        value = self.raw.get(name, default)
        if not isinstance(value, bool):
            raise self.error(name, "must be true or false")
        return value

    def items(self, name: str) -> list[Any]:
        """A JSON array."""
        value = self.raw.get(name, [])
        if not isinstance(value, list):
            raise self.error(name, "must be a JSON array")
        return value

    def text_list(self, name: str) -> tuple[str, ...]:
        """An array of non-empty strings."""
        values = self.items(name)
        if not all(isinstance(v, str) and v for v in values):
            raise self.error(name, "must be an array of non-empty strings")
        return tuple(values)

    def text_map(self, name: str, key_re: re.Pattern[str] | None = None) -> Mapping[str, str]:
        """An object of strings, its names matching `key_re` if given."""
        value = self.raw.get(name, {})
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()
        ):
            raise self.error(name, "must be a JSON object of strings")
        for item in value:
            if key_re is not None and not key_re.fullmatch(item):
                raise self.error(name, f"invalid name {item!r}")
        return MappingProxyType(dict(value))


def check_template(r: EntryReader, name: str, template: str, allowed: set[str]) -> set[str]:
    """The placeholders of a field's template, each one allowed; else a CatalogError."""
    try:
        names = template_fields(template)
    except ValueError as exc:
        raise r.error(name, f"malformed template: {exc}") from exc
    unknown = sorted(names - allowed)
    if unknown:
        raise r.error(name, f"unknown placeholder {{{unknown[0]}}}")
    return names


def check_values(
    r: EntryReader, name: str, values: Mapping[str, str], params: set[str]
) -> set[str]:
    """The placeholders used by a map of header or query values without line breaks."""
    used: set[str] = set()
    for item, value in values.items():
        if any(c in value for c in "\r\n"):
            raise r.error(f"{name}.{item}", "must not contain line breaks")
        used |= check_template(r, f"{name}.{item}", value, params)
    return used


def check_url(
    r: EntryReader, name: str, url: str, params: set[str], *, allow_query: bool
) -> set[str]:
    """The placeholders of an endpoint URL: https, a fixed domain, no user info or fragment."""
    names = check_template(r, name, url, params)
    # The scheme is checked on the template itself so a parameter can never supply it.
    if not url.startswith("https://"):
        raise r.error(name, "must be an https URL")
    try:
        template_parts = urlsplit(url)
        parts = urlsplit(url.format_map({n: "sample" for n in names}))
    except ValueError as exc:
        raise r.error(name, f"is not a valid URL ({exc})") from None
    if "@" in parts.netloc:
        raise r.error(name, "must not contain user info")
    host_template = template_parts.netloc.split(":", 1)[0]
    if "}" in host_template and not HOST_SUFFIX_RE.fullmatch(host_template.rpartition("}")[2]):
        raise r.error(name, "a parameter in the host must be followed by a fixed domain")
    if not parts.hostname or not HOST_RE.fullmatch(parts.hostname):
        raise r.error(name, f"invalid host in {url!r}")
    try:
        parts.port  # noqa: B018  # evaluated for its ValueError on a bad port
    except ValueError as exc:
        raise r.error(name, f"invalid port: {exc}") from exc
    if parts.fragment or url.endswith("#"):
        raise r.error(name, "must not have a fragment")
    if not allow_query and (parts.query or "?" in url):
        raise r.error(name, "must not have a query string")
    return names
