"""Requests a catalog entry declares besides its settings: the "who am I" request that names
a connected account's external identity, and the example call shown in the editor's help.

Standard library only; read by app.integrations.catalog_validation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal, cast, get_args

from app.integrations.catalog_reader import EntryReader

WhoAmIMethod = Literal["GET", "POST"]
ExampleMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
# A dotted path into a JSON answer: names, or digits for a list index ("accounts.0.name").
_ANSWER_FIELD_RE = re.compile(r"[A-Za-z0-9_$@-]+(\.[A-Za-z0-9_$@-]+)*")
MAX_IDENTITY_LENGTH = 200


@dataclass(frozen=True)
class WhoAmI:
    """A request answered with the account's identity: `field` of its JSON answer."""

    method: WhoAmIMethod
    path: str
    field: str


def _no_body() -> Mapping[str, Any] | None:
    return None


@dataclass(frozen=True)
class Example:
    """A first call a script can make, shown per integration in the editor's help."""

    method: ExampleMethod
    path: str
    json: Mapping[str, Any] | None = field(default_factory=_no_body)


_WHOAMI_FIELDS = frozenset(f.name for f in fields(WhoAmI))
_EXAMPLE_FIELDS = frozenset(f.name for f in fields(Example))


def check_plain_path(r: EntryReader, path: str) -> None:
    """A path under the base URL only (it is sent with the account's credentials)."""
    if not path.startswith("/") or path.startswith("//") or any(c in path for c in "{}#\\ "):
        raise r.error("path", "must be a plain path under the base URL, starting with /")
    if ".." in path.split("?")[0].split("/"):
        raise r.error("path", "must not climb out of the base URL with ..")


def read_whoami(r: EntryReader) -> WhoAmI | None:
    """The entry's `whoami` request, validated; None when it declares none."""
    if r.raw.get("whoami") is None:
        return None
    w = r.nested("whoami", r.raw["whoami"])
    w.reject_unknown(_WHOAMI_FIELDS)
    method = cast(WhoAmIMethod, w.choice("method", get_args(WhoAmIMethod), "GET"))
    path = w.text("path")
    check_plain_path(w, path)
    answer_field = w.text("field")
    if not _ANSWER_FIELD_RE.fullmatch(answer_field):
        raise w.error("field", "must be a dotted path into the JSON answer, e.g. user.login")
    return WhoAmI(method=method, path=path, field=answer_field)


def read_example(r: EntryReader) -> Example | None:
    """The entry's `example` call, validated; None when it declares none."""
    if r.raw.get("example") is None:
        return None
    e = r.nested("example", r.raw["example"])
    e.reject_unknown(_EXAMPLE_FIELDS)
    method = cast(ExampleMethod, e.choice("method", get_args(ExampleMethod), "GET"))
    path = e.text("path")
    check_plain_path(e, path)
    body = e.raw.get("json")
    if body is not None and not isinstance(body, Mapping):
        raise e.error("json", "must be a JSON object")
    return Example(method=method, path=path, json=MappingProxyType(dict(body)) if body else None)


def whoami_dict(whoami: WhoAmI | None) -> dict[str, str] | None:
    """A who-am-I request in the JSON shape of catalog.json and the integration's column."""
    if whoami is None:
        return None
    return {"method": whoami.method, "path": whoami.path, "field": whoami.field}


def answer_field(answer: Any, dotted: str) -> str | None:
    """The text at a dotted path of a JSON answer (digits index lists), or None."""
    value = answer
    for part in dotted.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text[:MAX_IDENTITY_LENGTH] or None
