"""Run limits and run results: plain data that crosses the host/worker boundary."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from sandbox.journal import Journal

# One owner for each size cap the host and the worker both rely on.
MAX_SOURCE_BYTES = 256 * 1024
MAX_CALL_BYTES = 1024 * 1024  # the JSON of one integration call's arguments
MAX_ERROR_CHARS = 4000  # an error message, as the worker sends it and the host keeps it


def source_size_error(source: str) -> str | None:
    """The message for a script larger than MAX_SOURCE_BYTES, or None when it fits."""
    size = len(source.encode("utf-8", "surrogatepass"))
    if size <= MAX_SOURCE_BYTES:
        return None
    return (
        f"the script is {size} bytes; scripts may be at most {MAX_SOURCE_BYTES} bytes "
        f"({MAX_SOURCE_BYTES // 1024} KiB)"
    )


@dataclass(frozen=True)
class Limits:
    """Per-run resource limits; every field has a default fit for a small API script."""

    wall_time_s: float = 30.0
    cpu_time_s: int = 10
    memory_mb: int = 256
    output_bytes: int = 256 * 1024
    result_bytes: int = 1024 * 1024
    max_calls: int = 200
    # Replies the host keeps so the run can park; a run past this cannot park (memory_limit).
    journal_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"limit {name} must be a positive number, got {value!r}")

    def with_overrides(self, **overrides: Any) -> Limits:
        """Return a copy with the given limits replaced (None values are ignored)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


# A traceback keeps this many of the script's innermost frames (deep recursion is cut).
MAX_TRACE_FRAMES = 20


@dataclass(frozen=True)
class TraceFrame:
    """One frame of the script's own code in a traceback: its line and function name."""

    line: int
    name: str

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape of a frame."""
        return {"line": self.line, "name": self.name}


@dataclass(frozen=True)
class ScriptError:
    """Why a run failed: a stable code, a message for the scripter, the script line and the
    script's own frames (never the sandbox's), outermost first."""

    code: str
    message: str
    line: int | None = None
    trace: tuple[TraceFrame, ...] = ()
    # Why an integration error happened, where the host said (`NoIntegrationGrant.reason`:
    # "no_master_account", "refused", ...): what a person must do next depends on it.
    reason: str | None = None

    def to_dict(self, *, with_trace: bool = False) -> dict[str, Any]:
        """Return the JSON shape used by the CLI and the API; the worker's report to the host
        adds the frames (`with_trace`), which the app keeps on the run."""
        data: dict[str, Any] = {"code": self.code, "message": self.message, "line": self.line}
        if self.reason is not None:
            data["reason"] = self.reason
        if with_trace:
            data["trace"] = [frame.to_dict() for frame in self.trace]
        return data


_REASON = re.compile(r"[a-z][a-z_]{0,39}")


def reason_from_data(raw: Any) -> str | None:
    """An error's reason from untrusted data: a short snake_case word, else None."""
    return raw if isinstance(raw, str) and _REASON.fullmatch(raw) else None


def trace_from_data(raw: Any) -> tuple[TraceFrame, ...]:
    """Frames from the worker's JSON, keeping only well-formed ones (the worker is untrusted)."""
    if not isinstance(raw, list):
        return ()
    frames = [
        TraceFrame(item["line"], item["name"][:80])
        for item in raw[-MAX_TRACE_FRAMES:]
        if isinstance(item, dict)
        and isinstance(item.get("line"), int)
        and not isinstance(item.get("line"), bool)
        and isinstance(item.get("name"), str)
    ]
    return tuple(frames)


SUCCEEDED = "succeeded"
FAILED = "failed"
TIMED_OUT = "timed_out"
CANCELLED = "cancelled"
# The host's call handler raised ParkRun: resume later with `Executor.run(journal=...)`.
PARKED = "parked"


@dataclass
class RunResult:
    """The outcome of one run, as data."""

    status: str
    result: Any = None
    output: str = ""
    error: ScriptError | None = None
    duration_ms: float = 0.0
    # Host calls of every kind (what `max_calls` limits and the journal numbers), and of
    # them the requests to a service (`integrations.request` and its shortcuts): what a
    # person reads as the run's calls, one for each call-log row.
    calls: int = 0
    requests: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    # What the run saw, to resume it by replay: set whenever the worker ran the script,
    # unless the replies it got outgrew Limits.journal_bytes (then it cannot be resumed).
    journal: Journal | None = None

    @property
    def ok(self) -> bool:
        """True when the run succeeded."""
        return self.status == SUCCEEDED

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape used by the CLI and the API."""
        return {
            "status": self.status,
            "result": self.result,
            "output": self.output,
            "error": self.error.to_dict() if self.error else None,
            "duration_ms": round(self.duration_ms, 3),
            "calls": self.requests,
        }
