"""Cron expressions in a time zone: check them, say them in words, list their due times.

cronsim (by the author of Healthchecks.io, which runs millions of cron checks) does the
calendar: it walks wall-clock times in the zone as Debian's cron does across DST changes
(a time the spring change skips fires at the first minute after it; a time the autumn
change repeats fires once), and its `explain()` gives the words ("At 09:00 on Monday
through Friday"). Only the classic five fields are accepted: cronsim also takes a sixth
(seconds), which no user coming from crontab, Apps Script, n8n or Windmill expects here.
"""

from __future__ import annotations

import functools
import itertools
from datetime import UTC, datetime
from importlib import resources
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from app.errors import InvalidSchedule

FIELDS = ("minute", "hour", "day of month", "month", "day of week")
MAX_CRON_LENGTH = 120
MAX_ZONE_LENGTH = 64
_FIELDS_HELP = (
    "five fields: minute (0-59) hour (0-23) day-of-month (1-31) month (1-12 or jan-dec)"
    " day-of-week (0-6 or sun-sat, 0 is Sunday), e.g. '0 9 * * 1-5' for 09:00 on weekdays"
)


@functools.cache
def _zone_names() -> frozenset[str]:
    # The IANA names as the tzdata package lists them (a dependency): ZoneInfo alone, and
    # zoneinfo.available_timezones(), also take the system's "localtime" or "posixrules".
    return frozenset(resources.files("tzdata").joinpath("zones").read_text().split())


# Legacy names tzdata still has (EST, CET, Japan…) and the region a person picking one most
# likely lives in. EST is UTC-5 all year: a user in New York who picked it saw their runs
# move an hour each summer. The regions follow their daylight saving; the legacy names need not.
LEGACY_ZONES = {
    "EST": "America/New_York", "EST5EDT": "America/New_York",
    "CST6CDT": "America/Chicago",
    "MST": "America/Denver (America/Phoenix in Arizona)", "MST7MDT": "America/Denver",
    "Navajo": "America/Denver",
    "PST8PDT": "America/Los_Angeles",
    "HST": "Pacific/Honolulu",
    "CET": "Europe/Paris", "MET": "Europe/Paris", "EET": "Europe/Athens",
    "WET": "Europe/Lisbon", "Portugal": "Europe/Lisbon",
    "GB": "Europe/London", "GB-Eire": "Europe/London", "Eire": "Europe/Dublin",
    "Poland": "Europe/Warsaw", "Turkey": "Europe/Istanbul", "W-SU": "Europe/Moscow",
    "Iceland": "Atlantic/Reykjavik", "Egypt": "Africa/Cairo", "Libya": "Africa/Tripoli",
    "Israel": "Asia/Jerusalem", "Iran": "Asia/Tehran", "Japan": "Asia/Tokyo",
    "PRC": "Asia/Shanghai", "ROC": "Asia/Taipei", "ROK": "Asia/Seoul",
    "Hongkong": "Asia/Hong_Kong", "Singapore": "Asia/Singapore",
    "NZ": "Pacific/Auckland", "NZ-CHAT": "Pacific/Chatham", "Kwajalein": "Pacific/Kwajalein",
    "Cuba": "America/Havana", "Jamaica": "America/Jamaica",
}
# Other names for UTC itself.
UTC_ALIASES = frozenset({
    "GMT", "GMT0", "GMT+0", "GMT-0", "Greenwich", "UCT", "Universal", "Zulu",
    "Etc/UTC", "Etc/GMT", "Etc/GMT0", "Etc/GMT+0", "Etc/GMT-0", "Etc/Greenwich",
    "Etc/UCT", "Etc/Universal", "Etc/Zulu",
})


def is_region(name: str) -> bool:
    """Whether `name` is UTC or an Area/Location name (Europe/Berlin), which follows its
    region's clock; not a legacy name (EST) nor a fixed offset (Etc/GMT+5)."""
    return name == "UTC" or ("/" in name and not name.startswith("Etc/"))


def check_zone(name: str) -> ZoneInfo:
    """The time zone named `name` for a new or changed schedule (UTC or an IANA region name
    such as Europe/Berlin), or InvalidSchedule saying which name to use instead.

    Schedules stored with a legacy name before it was refused keep it and keep firing:
    their due times are counted with ZoneInfo, not checked here again."""
    shown = repr(name[:MAX_ZONE_LENGTH])
    if len(name) > MAX_ZONE_LENGTH or name not in _zone_names():
        problem = (f"{shown} is not an IANA time zone name;"
                   " use one such as UTC, Europe/Berlin or America/New_York")
    elif name in UTC_ALIASES:
        problem = f"{shown} is UTC under an old name; use UTC"
    elif name in LEGACY_ZONES:
        problem = (f"{shown} is an old zone name, not a region, and need not follow the "
                   "region's summer time; use the region's name, such as "
                   f"{LEGACY_ZONES[name]}")
    elif name.startswith("Etc/GMT"):
        problem = (f"{shown} is a fixed offset from UTC that never changes for summer time"
                   " (in these names the sign is reversed: Etc/GMT+5 is UTC-5); use a region name"
                   " such as Europe/Berlin, or UTC")
    elif not is_region(name):
        problem = f"{shown} is not a region name; use one such as Europe/Berlin or UTC"
    else:
        return ZoneInfo(name)
    raise InvalidSchedule(f"timezone: {problem}", field="timezone")


def check_cron(expression: str) -> str:
    """The expression with its fields separated by single spaces, or InvalidSchedule naming
    what is wrong (its number of fields, or which field cronsim refused)."""
    fields = expression.split()
    if len(expression) > MAX_CRON_LENGTH:
        raise InvalidSchedule(
            f"cron: at most {MAX_CRON_LENGTH} characters; {_FIELDS_HELP}", field="cron"
        )
    if len(fields) != len(FIELDS):
        raise InvalidSchedule(
            f"cron: {expression.strip()!r} has {len(fields)} field(s); it needs {_FIELDS_HELP}",
            field="cron",
        )
    normal = " ".join(fields)
    try:
        # The start is any aware time: cronsim checks the fields when it is built, and
        # refuses a day that no month has ("0 0 30 2 *") the same way.
        CronSim(normal, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as refused:
        raise InvalidSchedule(
            f"cron: {normal!r} is not valid ({_refused_field(refused, fields)}); it needs"
            f" {_FIELDS_HELP}",
            field="cron",
        ) from None
    return normal


def _refused_field(refused: CronSimError, fields: list[str]) -> str:
    # cronsim says "Bad minute", "Bad day-of-week", ...: name the field and its place.
    words = str(refused)
    for place, name in enumerate(FIELDS, start=1):
        if words == f"Bad {name.replace(' ', '-')}":
            if name == "day of month" and _valid([*fields[:3], "*", *fields[4:]]):
                # "31" is in range; it is February (or April...) that has no 31st.
                return (
                    f"field 3, the day of month, {fields[2]!r}, comes in none of the months"
                    f" of field 4, {fields[3]!r}: it would never run"
                )
            return f"field {place}, the {name}, is out of range or malformed"
    return words


def _valid(fields: list[str]) -> bool:
    try:
        CronSim(" ".join(fields), datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError:
        return False
    return True


def describe(expression: str) -> str:
    """The expression in English ("At 09:00 on Monday through Friday")."""
    return str(CronSim(expression, datetime(2000, 1, 1, tzinfo=UTC)).explain())


def next_times(expression: str, zone: str, *, after: datetime, count: int) -> list[datetime]:
    """The next `count` due times strictly after `after`, in UTC (the walk is in `zone`)."""
    start = after.astimezone(ZoneInfo(zone))
    try:
        times = list(itertools.islice(CronSim(expression, start), count))
    except (CronSimError, StopIteration):  # a calendar that never comes (cronsim's limit)
        return []
    return [when.astimezone(UTC) for when in times]


def next_time(expression: str, zone: str, *, after: datetime) -> datetime | None:
    """The first due time strictly after `after` (UTC), or None if there is none."""
    found = next_times(expression, zone, after=after, count=1)
    return found[0] if found else None
