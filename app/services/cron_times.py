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


def check_zone(name: str) -> ZoneInfo:
    """The time zone named `name` (an IANA name such as Europe/Berlin), or InvalidSchedule."""
    if len(name) <= MAX_ZONE_LENGTH and name in _zone_names():
        return ZoneInfo(name)
    raise InvalidSchedule(
        f"timezone: {name[:MAX_ZONE_LENGTH]!r} is not an IANA time zone name;"
        " use one such as UTC, Europe/Berlin or America/New_York",
        field="timezone",
    )


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
