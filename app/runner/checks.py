"""The app's source checker: a script is compiled in a sandbox worker, never in the web
process (DESIGN §6): parsing holds the GIL, and a hostile source can make it take seconds.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

from app.errors import CheckerBusy, CheckerUnavailable
from sandbox import Executor, Limits, SandboxUnavailable, SourceCheck

# Checks one process runs at once: each takes a sandbox worker (in the embedded server,
# one the runs use too) for up to SCRIPTBOX_COMPILE_TIME_S, so a scripter sending many
# slow sources at once must not take them all. A check past it waits for a place.
CHECKS_AT_ONCE = 2


def compile_limits(config: Mapping[str, Any]) -> Limits:
    """The limits of one check: SCRIPTBOX_COMPILE_TIME_S of wall and CPU time (checked at
    start by app.config), and a run's memory."""
    seconds = float(config["COMPILE_TIME_S"])
    return Limits(
        wall_time_s=seconds,
        cpu_time_s=max(1, math.ceil(seconds)),
        memory_mb=int(config["RUN_MEMORY_MB"]),
    )


def sandbox_checker(
    executor: Callable[[], Executor], config: Mapping[str, Any], *, at_once: int = CHECKS_AT_ONCE
) -> Callable[[str], SourceCheck]:
    """A checker that sends each source to a worker of `executor()`, with the limits the
    config holds at the time, `at_once` at a time: a check waits for a place as long as a
    check may take, then is refused (CheckerBusy) in words."""
    places = threading.BoundedSemaphore(at_once)

    def check(source: str) -> SourceCheck:
        limits = compile_limits(config)
        if not places.acquire(timeout=limits.wall_time_s):
            raise CheckerBusy(
                "the script could not be checked now: other scripts are being checked; save"
                " it again in a moment"
            )
        try:
            return executor().check(source, limits=limits)
        except SandboxUnavailable:
            raise CheckerUnavailable(
                "the script could not be checked now: the sandbox that checks scripts is not"
                " running or has no free worker; try again in a minute, and tell the server's"
                " operator if it goes on"
            ) from None
        finally:
            places.release()

    return check
