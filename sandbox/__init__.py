"""The sandbox: run untrusted Python scripts in isolated, single-use worker processes.

Package rule: `sandbox` depends on the standard library and RestrictedPython only. It
never imports `app`, flask, sqlalchemy or requests (tests/sandbox/test_boundaries.py
fails if it does). The host talks to it through the names in `__all__`.

The host-side names (the executor and its helpers) load on first use: the zygote imports
this package too, and a smaller zygote forks faster and shares more with its workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.compiler import compile_script
from sandbox.journal import REPLAY_DIVERGED, Journal, JournalError, ParkRun
from sandbox.limits import (
    CANCELLED,
    FAILED,
    MAX_SOURCE_BYTES,
    PARKED,
    SUCCEEDED,
    TIMED_OUT,
    Limits,
    RunResult,
    ScriptError,
    size_in_words,
    source_size_error,
    trace_from_data,
)
from sandbox.policy import ALLOWED_MODULES
from sandbox.source_check import CHECK_TIMED_OUT, Call, SourceCheck
from sandbox.store_ops import (
    NO_STORE,
    STORE_DELETE,
    STORE_GET,
    STORE_KEYS,
    STORE_OPS,
    STORE_SET,
)

if TYPE_CHECKING:
    from sandbox.pool import (
        CallHandler,
        Executor,
        HostCall,
        HostCallError,
        OutputHandler,
        RunClock,
        SandboxUnavailable,
        refuse_all_calls,
    )

_POOL_NAMES = frozenset(
    {
        "CallHandler",
        "Executor",
        "HostCall",
        "HostCallError",
        "OutputHandler",
        "RunClock",
        "SandboxUnavailable",
        "refuse_all_calls",
    }
)


def __getattr__(name: str) -> Any:
    if name in _POOL_NAMES:
        from sandbox import pool

        return getattr(pool, name)
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")


__all__ = [
    "ALLOWED_MODULES",
    "CANCELLED",
    "CHECK_TIMED_OUT",
    "FAILED",
    "MAX_SOURCE_BYTES",
    "NO_STORE",
    "PARKED",
    "REPLAY_DIVERGED",
    "STORE_DELETE",
    "STORE_GET",
    "STORE_KEYS",
    "STORE_OPS",
    "STORE_SET",
    "SUCCEEDED",
    "TIMED_OUT",
    "Call",
    "CallHandler",
    "Executor",
    "HostCall",
    "HostCallError",
    "Journal",
    "JournalError",
    "Limits",
    "OutputHandler",
    "ParkRun",
    "RunClock",
    "RunResult",
    "SandboxUnavailable",
    "ScriptError",
    "SourceCheck",
    "compile_script",
    "refuse_all_calls",
    "size_in_words",
    "source_size_error",
    "trace_from_data",
]
