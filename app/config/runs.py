"""Run settings: a run's limits in the sandbox, its calls and prompts, pausing and parking,
and the caps on runs and schedules per user and facility."""

from __future__ import annotations

from typing import Any

from app.config.rules import ConfigError, require_positive

DEFAULTS: dict[str, Any] = {
    # Pre-forked sandbox workers in each process that runs scripts.
    "IDLE_WORKERS": 4,
    "RUN_WALL_TIME_S": 30.0,
    "RUN_CPU_TIME_S": 10,
    "RUN_MEMORY_MB": 256,
    "RUN_OUTPUT_BYTES": 256 * 1024,
    "RUN_RESULT_BYTES": 1024 * 1024,
    "RUN_MAX_CALLS": 200,
    "CALL_TIMEOUT_S": 30.0,
    "CALL_MAX_RESPONSE_BYTES": 10 * 1024 * 1024,
    "REFRESH_MARGIN_S": 30 * 60,
    "GRANT_TIMEOUT_S": 300,
    # Wall and CPU seconds a source check (a compile in a sandbox worker) may take: an
    # ordinary 256 KiB script takes ~0.7 s of CPU.
    "COMPILE_TIME_S": 10.0,
    # Durable runs (DESIGN §4): a paused run keeps its worker this long, then parks;
    # beyond MAX_LIVE_PAUSED live pauses in one process, runs park at once.
    "PARK_AFTER_S": 10.0,
    "MAX_LIVE_PAUSED": 100,
    # How often a process renews its runs' heartbeat; three missed beats end them `interrupted`.
    "HEARTBEAT_S": 2.0,
    # Caps (DESIGN §6): live runs per user and per facility (more wait `queued`), open prompts.
    "MAX_RUNS_PER_USER": 10,
    "MAX_RUNS_PER_FACILITY": 50,
    "MAX_QUEUED_RUNS_PER_USER": 100,  # a user's runs waiting `queued`; past it one is refused
    "MAX_PENDING_GRANTS_PER_USER": 10,
    # Schedules per script and per facility (each fires runs on its own).
    "MAX_SCHEDULES_PER_SCRIPT": 10,
    "MAX_SCHEDULES_PER_FACILITY": 100,
}

MAX_COMPILE_TIME_S = 300.0


def validate(config: Any) -> None:
    """Refuse run limits and caps that cannot work."""
    require_positive(
        config,
        (
            "RUN_WALL_TIME_S",
            "RUN_CPU_TIME_S",
            "RUN_MEMORY_MB",
            "RUN_OUTPUT_BYTES",
            "RUN_RESULT_BYTES",
            "RUN_MAX_CALLS",
            "CALL_TIMEOUT_S",
            "GRANT_TIMEOUT_S",
            "IDLE_WORKERS",
            "HEARTBEAT_S",
            "MAX_LIVE_PAUSED",
            "MAX_RUNS_PER_USER",
            "MAX_RUNS_PER_FACILITY",
            "MAX_QUEUED_RUNS_PER_USER",
            "MAX_PENDING_GRANTS_PER_USER",
            "MAX_SCHEDULES_PER_SCRIPT",
            "MAX_SCHEDULES_PER_FACILITY",
        ),
    )
    try:
        if float(config["PARK_AFTER_S"]) < 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError("SCRIPTBOX_PARK_AFTER_S must be 0 or more seconds") from None
    raw = config["COMPILE_TIME_S"]
    try:
        if isinstance(raw, bool):
            raise ValueError
        if not 0 < float(raw) <= MAX_COMPILE_TIME_S:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(
            f"SCRIPTBOX_COMPILE_TIME_S must be a number of seconds above 0 and at most "
            f"{MAX_COMPILE_TIME_S:g}"
        ) from None
