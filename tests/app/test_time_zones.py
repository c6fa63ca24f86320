"""The runs page reads its days in the browser's time zone (zoneinfo): that must work on a
machine without the system's zone files too (slim images), from the tzdata package."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime


def test_zones_resolve_without_the_systems_zone_files() -> None:
    zoneinfo.reset_tzpath(to=[])  # as on a machine without /usr/share/zoneinfo
    try:
        zone = zoneinfo.ZoneInfo.no_cache("Pacific/Auckland")
    finally:
        zoneinfo.reset_tzpath()  # the configured search path again
    summer = datetime(2026, 1, 15, 12, tzinfo=UTC).astimezone(zone)
    offset = summer.utcoffset()
    assert offset is not None and offset.total_seconds() == 13 * 3600  # New Zealand's summer
