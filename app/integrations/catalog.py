"""The built-in integration catalog: the catalog.json data file and its loader.

Standard library only. Each entry pre-fills an integration (DESIGN.md §5); quirks that data
can say stay in catalog.json, and every entry passes validate_entry (catalog_validation) before
anyone can use it. What an entry is, and the rules of its fields, live in catalog_entry.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from app.integrations.catalog_entry import CatalogEntry
from app.integrations.catalog_reader import CatalogError
from app.integrations.catalog_validation import validate_entry

CATALOG_PATH = Path(__file__).with_name("catalog.json")


def load_catalog(path: Path | None = None) -> dict[str, CatalogEntry]:
    """Load and validate a catalog file (default: the shipped catalog.json, read once)."""
    if path is None:
        return dict(_load_shipped())
    return _load(path)


@functools.cache
def _load_shipped() -> Mapping[str, CatalogEntry]:
    return MappingProxyType(_load(CATALOG_PATH))


def _load(path: Path) -> dict[str, CatalogEntry]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicates)
    except (OSError, ValueError) as exc:
        raise CatalogError(f"{path}: cannot read catalog: {exc}") from exc
    if not isinstance(raw, dict):
        raise CatalogError(f"{path}: the catalog must be a JSON object keyed by entry key")
    entries: dict[str, CatalogEntry] = {}
    for key, value in raw.items():
        if not isinstance(value, dict):
            raise CatalogError("must be a JSON object", entry=key)
        entries[key] = validate_entry(key, value)
    return entries


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError(f"duplicate key {name!r}")
        result[name] = value
    return result
