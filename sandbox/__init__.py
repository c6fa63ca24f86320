"""The sandbox: run untrusted Python scripts in isolated, single-use worker processes.

Package rule: `sandbox` depends on the standard library and RestrictedPython only. It
never imports `app`, flask, sqlalchemy or requests (tests/sandbox/test_boundaries.py
fails if it does). The host talks to it through the names in `__all__`.
"""

from sandbox.limits import CANCELLED, FAILED, SUCCEEDED, TIMED_OUT, Limits, RunResult, ScriptError
from sandbox.policy import ALLOWED_MODULES
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

__all__ = [
    "ALLOWED_MODULES",
    "CANCELLED",
    "FAILED",
    "SUCCEEDED",
    "TIMED_OUT",
    "CallHandler",
    "Executor",
    "HostCall",
    "HostCallError",
    "Limits",
    "OutputHandler",
    "RunClock",
    "RunResult",
    "SandboxUnavailable",
    "ScriptError",
    "refuse_all_calls",
]
