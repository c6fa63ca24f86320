"""The deadline of one integration call: its timeout, within the run's remaining time."""

from __future__ import annotations

from app.integrations.deadlines import Deadline
from sandbox import HostCall, HostCallError


def call_deadline(call: HostCall, *, call_timeout_s: float) -> Deadline:
    """The wall-clock limit of one exchange, from connect to the body's last byte: the
    call's `timeout` (at most `call_timeout_s`), within the run's remaining time."""
    wanted = call.args.get("timeout")
    timeout = call_timeout_s
    if isinstance(wanted, int | float) and not isinstance(wanted, bool) and wanted > 0:
        timeout = min(timeout, float(wanted))
    remaining = call.clock.remaining()
    if remaining <= 0:
        raise HostCallError("integration_timeout", "the run has no time left for this call")
    return Deadline(max(0.05, min(timeout, remaining)))
