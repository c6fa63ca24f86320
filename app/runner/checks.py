"""The app's source checker: a script is compiled in a sandbox worker, never in the web
process (DESIGN §6): parsing holds the GIL, and a hostile source can make it take seconds.

SCRIPTBOX_COMPILE_TIME_S (the check's wall and CPU limit) is read here, with its default:
Flask's `from_prefixed_env` (app.config) loads it like every SCRIPTBOX_ variable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from app.config import ConfigError
from app.errors import AppError
from sandbox import Executor, Limits, SandboxUnavailable, SourceCheck

DEFAULT_COMPILE_TIME_S = 10.0  # an ordinary 256 KiB script takes ~0.7 s of CPU
MAX_COMPILE_TIME_S = 300.0


class CheckerUnavailable(AppError):
    """The sandbox could not check a script: it is not running (its zygote is gone) or no
    worker became free in time. Nothing can be published until it answers again."""

    code = "sandbox_unavailable"
    status = 503


def compile_limits(config: Mapping[str, Any]) -> Limits:
    """The limits of one check: SCRIPTBOX_COMPILE_TIME_S of wall and CPU time, and a run's
    memory (ConfigError when the setting is not a number of seconds)."""
    raw = config.get("COMPILE_TIME_S", DEFAULT_COMPILE_TIME_S)
    try:
        if isinstance(raw, bool):
            raise ValueError
        seconds = float(raw)
        if not 0 < seconds <= MAX_COMPILE_TIME_S:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(
            f"SCRIPTBOX_COMPILE_TIME_S must be a number of seconds above 0 and at most "
            f"{MAX_COMPILE_TIME_S:g}"
        ) from None
    return Limits(
        wall_time_s=seconds,
        cpu_time_s=max(1, math.ceil(seconds)),
        memory_mb=int(config["RUN_MEMORY_MB"]),
    )


def sandbox_checker(
    executor: Callable[[], Executor], config: Mapping[str, Any]
) -> Callable[[str], SourceCheck]:
    """A checker that sends each source to a worker of `executor()`, with the limits the
    config holds at the time (validated here first, so a wrong setting stops the start)."""
    compile_limits(config)

    def check(source: str) -> SourceCheck:
        try:
            return executor().check(source, limits=compile_limits(config))
        except SandboxUnavailable:
            raise CheckerUnavailable(
                "the script could not be checked now: the sandbox that checks scripts is not"
                " running or has no free worker; try again in a minute, and tell the server's"
                " operator if it goes on"
            ) from None

    return check
