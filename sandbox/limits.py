"""Run limits and run results: plain data that crosses the host/worker boundary."""

from __future__ import annotations

import re
from collections.abc import Sequence
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


# What a run that crossed one of its limits is told: the limit in units people read, and
# what to do about it. One owner: the worker and the host both end runs at these limits.
def size_in_words(size: int) -> str:
    """A byte count as people read it: "256 KiB", "1 MiB", "1000 bytes"."""
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


def ran_too_long(wall_time_s: float) -> str:
    """The message of a run stopped at its wall-time limit (`timeout`)."""
    return (
        f"the script ran longer than {wall_time_s:g} s, the time a run may take; do less in "
        "one run (fewer calls, shorter sleeps) or split the work over several runs"
    )


def used_too_much_cpu(cpu_time_s: float) -> str:
    """The message of a run stopped at its CPU-time limit (`cpu_limit`)."""
    return (
        f"the script used more than {cpu_time_s:g} s of CPU, the computing a run may do; "
        "look for a loop that never ends, or compute less in one run"
    )


def ran_out_of_memory(memory_mb: int, *, doing: str = "") -> str:
    """The message of a run that needed more memory than its limit (`memory_limit`)."""
    return (
        f"the script ran out of memory{doing} ({memory_mb} MB is what a run may use); hold "
        "less at once, e.g. handle one page of results at a time"
    )


def printed_too_much(output_bytes: int) -> str:
    """The message of a run stopped at its output limit (`output_limit`)."""
    return (
        f"the script printed more than {size_in_words(output_bytes)}, what a run may print; "
        "print less (a summary, or every hundredth line) and return data in `result`"
    )


def result_too_large(result_bytes: int) -> str:
    """The message of a run whose `result` is over its limit (`output_limit`)."""
    return (
        f"`result` is larger than {size_in_words(result_bytes)}, what a run may return; "
        "return less (a summary, or only the fields you need)"
    )


def checked_too_long(limit_s: float) -> str:
    """The message of a source whose check (parse and compile) passed its time limit."""
    return (
        f"This script took too long to check (over {limit_s:g} s): Python could not compile "
        "it in that time. Split it into smaller scripts or simplify it (fewer and shorter "
        "f-strings, less deeply nested expressions), then save it again"
    )


def clamp_line(raw: Any, lines: int) -> int | None:
    """A script line number from untrusted data (a worker's report): an int from 1 to
    `lines` (the source's line count; larger ones become `lines`), else None."""
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
        return None
    return min(raw, max(lines, 1))


def line_count(source: str) -> int:
    """How many lines a source has, as Python numbers them (a last line without an end too)."""
    return source.count("\n") + 1


def made_too_many_calls(max_calls: int) -> str:
    """The message of a run stopped at its call limit (`call_limit`)."""
    return (
        f"the script made more than {max_calls} integration and store calls, what a run may "
        "make; make fewer (ask for larger pages, keep related values under one store key) or "
        "split the work over several runs"
    )


# A traceback keeps at most this many frames once repeats are folded (deep recursion is
# cut): the outermost TRACE_OUTERMOST_FRAMES, which show where the script made the call
# that went deep, and the innermost rest, where it failed; the gap says how many it left out.
MAX_TRACE_FRAMES = 20
TRACE_OUTERMOST_FRAMES = 5
# A repeat or gap count from the worker past this is not believed (it is untrusted).
_MAX_TRACE_COUNT = 2**31 - 1


@dataclass(frozen=True)
class TraceFrame:
    """One frame of the script's own code in a traceback: its line and function name, how
    many more times the same frame came right after it (`repeated`, Python's "[Previous
    line repeated N more times]"), and how many frames were left out right after it to fit
    MAX_TRACE_FRAMES (`omitted_after`)."""

    line: int
    name: str
    repeated: int = 0
    omitted_after: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape of a frame."""
        return {"line": self.line, "name": self.name, "repeated": self.repeated,
                "omitted_after": self.omitted_after}

    @property
    def depth(self) -> int:
        """How many frames of the call stack this entry stands for, the gap after it too."""
        return 1 + self.repeated + self.omitted_after


def fit_trace(frames: Sequence[TraceFrame]) -> tuple[TraceFrame, ...]:
    """frames (outermost first) as a traceback shows them: a frame that comes again right
    after itself folded into one with a repeat count, and a trace still longer than
    MAX_TRACE_FRAMES cut in the middle, its outermost and innermost frames kept."""
    folded: list[TraceFrame] = []
    for frame in frames:
        last = folded[-1] if folded else None
        if (last is not None and not last.omitted_after
                and (last.line, last.name) == (frame.line, frame.name)):
            folded[-1] = replace(frame, repeated=last.repeated + 1 + frame.repeated)
        else:
            folded.append(frame)
    if len(folded) <= MAX_TRACE_FRAMES:
        return tuple(folded)
    inner = MAX_TRACE_FRAMES - TRACE_OUTERMOST_FRAMES
    outer, left_out = folded[:TRACE_OUTERMOST_FRAMES], folded[TRACE_OUTERMOST_FRAMES:-inner]
    gap = outer[-1].omitted_after + sum(frame.depth for frame in left_out)
    outer[-1] = replace(outer[-1], omitted_after=gap)
    return (*outer, *folded[-inner:])


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


def _count(raw: Any) -> int:
    """A repeat or gap count from untrusted data: a small non-negative int, else 0."""
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= _MAX_TRACE_COUNT:
        return raw
    return 0


def trace_from_data(raw: Any) -> tuple[TraceFrame, ...]:
    """Frames from the worker's JSON or a stored run, keeping only well-formed ones (the
    worker is untrusted; runs stored before `repeated` and `omitted_after` lack them)."""
    if not isinstance(raw, list):
        return ()
    frames = [
        TraceFrame(item["line"], item["name"][:80], _count(item.get("repeated")),
                   _count(item.get("omitted_after")))
        for item in raw
        if isinstance(item, dict)
        and isinstance(item.get("line"), int)
        and not isinstance(item.get("line"), bool)
        and isinstance(item.get("name"), str)
    ]
    return fit_trace(frames)


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
