"""The clocks, sleeps, random generators and uuids scripts see, each answer journalled.

These replace the non-deterministic names of the `time`, `datetime`, `random` and
`uuid` module views (the policy keeps every other name): each reading goes through the
run's ValueLog, so a resumed run sees again exactly what the first run saw.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import random as _random
import time as _time
import uuid as _uuid
from collections.abc import Callable
from typing import Any

from sandbox.journal import (
    MONOTONIC,
    PERF_COUNTER,
    SEED,
    UUID1,
    UUID4,
    WALL_CLOCK,
    ValueLog,
)
from sandbox.policy import RANDOM_METHODS

_NS = 1_000_000_000


def _fresh_seed() -> int:
    return int.from_bytes(os.urandom(16), "big")


class _StandIn(type):
    """Metaclass of the clock-reading subclasses: every real date/datetime is an instance.

    `now().date()` and arithmetic on plain values return the stdlib classes; scripts
    checking `isinstance(x, datetime.date)` must still be answered as with the stdlib.
    """

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls.__mro__[1])

    def __subclasscheck__(cls, sub: Any) -> bool:
        return issubclass(sub, cls.__mro__[1])


def time_names(log: ValueLog) -> dict[str, Any]:
    """The `time` functions that read a clock or sleep."""

    def now() -> float:
        return log.reading(WALL_CLOCK) / _NS

    def at(secs: float | None) -> float:
        return now() if secs is None else secs

    def sleep(secs: float) -> None:
        """Suspend the script for the given number of seconds."""
        if not isinstance(secs, int | float) or isinstance(secs, bool):
            raise TypeError("time.sleep() takes a number of seconds")
        secs = float(secs)  # an exact float: a script's subclass may lie in __ge__
        if not secs >= 0:
            raise ValueError("sleep length must be non-negative")
        if not math.isfinite(secs):
            raise OverflowError("sleep length is too large")
        log.sleep(float(secs))

    def strftime(fmt: str, t: Any = None) -> str:
        """Format a time tuple (the current local time by default)."""
        return _time.strftime(fmt, _time.localtime(now()) if t is None else t)

    def asctime(t: Any = None) -> str:
        """A time tuple as text (the current local time by default)."""
        return _time.asctime(_time.localtime(now()) if t is None else t)

    return {
        "time": now,
        "time_ns": lambda: log.reading(WALL_CLOCK),
        "monotonic": lambda: log.reading(MONOTONIC) / _NS,
        "monotonic_ns": lambda: log.reading(MONOTONIC),
        "perf_counter": lambda: log.reading(PERF_COUNTER) / _NS,
        "perf_counter_ns": lambda: log.reading(PERF_COUNTER),
        "sleep": sleep,
        "gmtime": lambda secs=None: _time.gmtime(at(secs)),
        "localtime": lambda secs=None: _time.localtime(at(secs)),
        "ctime": lambda secs=None: _time.ctime(at(secs)),
        "strftime": strftime,
        "asctime": asctime,
    }


def datetime_names(log: ValueLog) -> dict[str, Any]:
    """`datetime.datetime` and `datetime.date` whose now()/today() read the journalled clock."""

    def now_s() -> float:
        return log.reading(WALL_CLOCK) / _NS

    class date(_dt.date, metaclass=_StandIn):
        """datetime.date whose today() reads the run's journalled clock."""

        __module__ = "datetime"
        __qualname__ = "date"

        @classmethod
        def today(cls) -> Any:
            """The current local date."""
            return cls.fromtimestamp(now_s())

        def __repr__(self) -> str:
            return "datetime." + super().__repr__()

    class datetime(_dt.datetime, metaclass=_StandIn):
        """datetime.datetime whose now()/utcnow()/today() read the run's journalled clock."""

        __module__ = "datetime"
        __qualname__ = "datetime"

        @classmethod
        def now(cls, tz: _dt.tzinfo | None = None) -> Any:
            """The current local date and time (in tz when given)."""
            return cls.fromtimestamp(now_s(), tz)

        @classmethod
        def utcnow(cls) -> Any:
            """The current UTC date and time, without tzinfo."""
            return cls.fromtimestamp(now_s(), _dt.UTC).replace(tzinfo=None)

        @classmethod
        def today(cls) -> Any:
            """The current local date and time."""
            return cls.fromtimestamp(now_s())

        def __repr__(self) -> str:
            return "datetime." + super().__repr__()

    return {"date": date, "datetime": datetime}


def random_names(log: ValueLog) -> dict[str, Any]:
    """The `random` functions, bound to one generator seeded from the journal, and `Random`."""

    class Random(_random.Random):
        """random.Random whose seed, when not given, is journalled."""

        __module__ = "random"
        __qualname__ = "Random"

        def seed(self, a: Any = None, version: int = 2) -> None:
            """Seed the generator (from the journalled per-run entropy when a is None)."""
            if a is None:
                a = log.take(SEED, _fresh_seed)
            super().seed(a, version)

    # The run's generator, seeded (and journalled) when the script imports `random`:
    # module views are built on import, so scripts that never import it journal no seed.
    rng = Random()
    names: dict[str, Any] = {name: getattr(rng, name) for name in RANDOM_METHODS.split()}
    names["Random"] = Random
    return names


def uuid_names(log: ValueLog) -> dict[str, Any]:
    """uuid1() and uuid4() whose values are journalled."""

    def uuid4() -> _uuid.UUID:
        """A random UUID."""
        return _uuid.UUID(hex=log.take(UUID4, lambda: _uuid.uuid4().hex))

    def uuid1(node: int | None = None, clock_seq: int | None = None) -> _uuid.UUID:
        """A time-based UUID; without a node, a random one (the host's MAC is not shown)."""

        def live() -> str:
            # A random multicast node, as RFC 4122 §4.5 allows: the worker must not
            # reveal (or even look up) the machine's hardware address.
            chosen = node if node is not None else int.from_bytes(os.urandom(6)) | (1 << 40)
            sequence = clock_seq if clock_seq is not None else int.from_bytes(os.urandom(2)) >> 2
            return _uuid.uuid1(chosen, sequence).hex

        return _uuid.UUID(hex=log.take(UUID1, live))

    return {"uuid1": uuid1, "uuid4": uuid4}


def module_overrides(log: ValueLog) -> dict[str, Callable[[], dict[str, Any]]]:
    """Per module, a factory of the names that replace the policy's non-deterministic ones."""
    return {
        "time": lambda: time_names(log),
        "datetime": lambda: datetime_names(log),
        "random": lambda: random_names(log),
        "uuid": lambda: uuid_names(log),
    }
