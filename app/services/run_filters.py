"""What a runs list narrows by (status, script, member, what started them, days in a time
zone), read from query arguments and written back into links; no database access."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.db import MAX_INTEGER
from app.errors import ValidationError
from app.lifecycle import RunStatus
from app.models._types import iso
from app.models.scripts import RunTrigger
from app.services.cron_times import MAX_ZONE_LENGTH

# What started a run, as the filters take it (the one list: app.models.scripts.RunTrigger).
TRIGGERS: tuple[str, ...] = get_args(RunTrigger)


@dataclass(frozen=True)
class RunFilters:
    """What the runs page narrows by; None means any. `since` and `until` are days in
    `zone` (the browser's time zone, which the list shows its times in), UTC by default.
    `schedule_id` narrows to the runs one schedule started (of this facility: the runs
    are the facility's, so another facility's schedule id matches none); so does
    `webhook_trigger_id` to the runs one webhook trigger started."""

    status: RunStatus | None = None
    script_id: int | None = None
    user_id: int | None = None
    trigger: str | None = None
    schedule_id: int | None = None
    webhook_trigger_id: int | None = None
    since: date | None = None
    until: date | None = None
    zone: ZoneInfo | None = None

    # Values the Runs page could not read from its address (RunFilters.read), each a
    # sentence naming the field by its label: no run matches while one is there.
    refused: tuple[str, ...] = ()

    @classmethod
    def parse(cls, args: Any) -> RunFilters:
        """Filters from query arguments, a ValidationError naming the argument that is wrong."""
        return cls(**{attr: read(args.get(arg), arg) for arg, (attr, read) in _READERS.items()})

    @classmethod
    def read(cls, args: Any) -> RunFilters:
        """Filters from the Runs page's address, which people edit by hand: a wrong value
        is not a 400 page but a sentence by the filter form saying which field takes what
        (`refused`), and the list shows no run; the other filters stay as given."""
        values, refused = read_said(args, _READERS, PAGE_WORDS)
        return cls(**values, refused=refused)

    def problem(self) -> str | None:
        """Why no run can match, in words, where the filters contradict themselves."""
        if self.since is not None and self.until is not None and self.since > self.until:
            return (f"The first day ({self.since.isoformat()}) is after the last"
                    f" ({self.until.isoformat()}): swap them.")
        return None

    def problems(self) -> tuple[str, ...]:
        """Everything the Runs page says by its filter form: the values it could not read,
        and days that contradict themselves."""
        swapped = self.problem()
        return self.refused + ((swapped,) if swapped else ())

    def as_args(self, *, without: Collection[str] = ()) -> dict[str, str]:
        """The filters as query arguments (for links that keep them), but those named in
        `without` (for a link that clears one)."""
        values = {
            "status": self.status,
            "script_id": self.script_id,
            "user_id": self.user_id,
            "trigger": self.trigger,
            "schedule_id": self.schedule_id,
            "webhook_trigger_id": self.webhook_trigger_id,
            "since": iso(self.since),
            "until": iso(self.until),
            # The zone only says what the days mean: without a day it filters nothing.
            "tz": self.zone.key if self.zone and (self.since or self.until) else None,
        }
        return {k: str(v) for k, v in values.items() if v is not None and k not in without}


# How a list reads one query argument: its value (None when empty) or a ValidationError.
Reader = Callable[[Any, str], Any]


def read_said(
    args: Any,
    readers: Mapping[str, tuple[str, Reader]],
    words: Mapping[str, tuple[str, str]],
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The values of a list page's address, which people edit by hand (the Runs page's,
    the call log's): each argument of `readers` read into its field, and for each that
    cannot be read, no value but a sentence naming the form's field and what it takes
    (`words`: its label and that), for the page to say by its filter form."""
    values: dict[str, Any] = {}
    refused: list[str] = []
    for arg, (attr, read) in readers.items():
        try:
            values[attr] = read(args.get(arg), arg)
        except ValidationError:
            label, takes = words[arg]
            given = str(args.get(arg))
            shown = given if len(given) <= 40 else f"{given[:40]}…"
            refused.append(f"{label} takes {takes}, not “{shown}”.")
    return values, tuple(refused)


def _status(value: Any, field: str) -> RunStatus | None:
    if value in (None, ""):
        return None
    if value not in set(RunStatus):
        raise ValidationError(f"{field} must be one of {', '.join(RunStatus)}", field=field)
    return RunStatus(value)


def _trigger(value: Any, field: str) -> str | None:
    if value in (None, ""):
        return None
    if value not in TRIGGERS:
        raise ValidationError(
            f"{field} must be one of {', '.join(TRIGGERS)} (what started the run)", field=field
        )
    return str(value)


def parse_int(value: Any, field: str) -> int | None:
    """A whole number from a query argument that the database can compare with, None when
    it is empty."""
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{field} must be a number", field=field) from None
    if abs(number) > MAX_INTEGER:
        raise ValidationError(
            f"{field} must be a number from {-MAX_INTEGER:,} to {MAX_INTEGER:,}", field=field
        )
    return number


def _date(value: Any, field: str) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValidationError(f"{field} must be a date like 2026-01-31", field=field) from None


def _zone(value: Any, field: str) -> ZoneInfo | None:
    if value in (None, ""):
        return None
    name = str(value)
    problem = f"{field} must be a time zone like Europe/Paris"
    if len(name) > MAX_ZONE_LENGTH:
        raise ValidationError(problem, field=field)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # Not found, or not a zone's name at all ("../x", "zone.tab", a directory).
        raise ValidationError(problem, field=field) from None


def day_start(day: date, zone: ZoneInfo | None, *, later: int = 0) -> datetime:
    """The first instant of `day` (+ `later` days) in `zone` (UTC when None), in UTC.

    Adding days to an aware datetime moves its wall clock, and zoneinfo gives each wall
    time the offset of its own date: a day on either side of a DST change starts when it
    should. The calendar's first and last days may fall outside what datetime can hold
    in UTC; they stand for the earliest and latest instants.
    """
    try:
        start = datetime.combine(day, time(), zone or UTC) + timedelta(days=later)
        return start.astimezone(UTC)
    except OverflowError:
        edge = datetime.max if day.year > 1 else datetime.min
        return edge.replace(tzinfo=UTC)


# Each query argument the filters read, with the field it fills and how it is read.
_READERS: dict[str, tuple[str, Reader]] = {
    "status": ("status", _status),
    "trigger": ("trigger", _trigger),
    "script_id": ("script_id", parse_int),
    "user_id": ("user_id", parse_int),
    "schedule_id": ("schedule_id", parse_int),
    "webhook_trigger_id": ("webhook_trigger_id", parse_int),
    "since": ("since", _date),
    "until": ("until", _date),
    "tz": ("zone", _zone),
}
# The Runs page's words for each argument (its form's label) and what it takes: the API
# names the parameter, the page the field a person sees.
PAGE_WORDS: dict[str, tuple[str, str]] = {
    "status": ("Status", "one of the statuses in its list"),
    "trigger": ("Started by", "one of the choices in its list"),
    "script_id": ("Script", "one of the scripts in its list"),
    "user_id": ("User", "one of the members in its list"),
    "schedule_id": ("The schedule filter", "a schedule's number"),
    "webhook_trigger_id": ("The webhook trigger filter", "a webhook trigger's number"),
    "since": ("From", "a day like 2026-01-31"),
    "until": ("To", "a day like 2026-01-31"),
    "tz": ("The time zone", "a name like Europe/Paris"),
}
