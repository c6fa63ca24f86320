"""Handles on worker processes: kill and close one, learn how one ended."""

from __future__ import annotations

import collections
import os
import signal
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class Worker:
    """A worker process: its pid, host channel and pidfd (-1 where unsupported)."""

    pid: int
    channel: socket.socket
    pidfd: int

    def kill(self) -> None:
        """Send SIGKILL (through the pidfd, so a recycled pid is never hit)."""
        try:
            if self.pidfd >= 0:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)
        except (ProcessLookupError, OSError):
            pass

    def close(self) -> None:
        """Close the channel and the pidfd."""
        self.channel.close()
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


@dataclass
class Exits:
    """Abnormal worker exits reported by the zygote, kept for a short while."""

    statuses: collections.OrderedDict[int, dict[str, int]] = field(
        default_factory=collections.OrderedDict
    )
    cond: threading.Condition = field(default_factory=threading.Condition)

    def record(self, pid: int, status: dict[str, int]) -> None:
        """Keep the exit status the zygote reported for pid."""
        with self.cond:
            self.statuses[pid] = status
            while len(self.statuses) > 4096:
                self.statuses.popitem(last=False)
            self.cond.notify_all()

    def wait(self, pid: int, timeout: float) -> dict[str, int] | None:
        """Wait until the zygote has reaped pid after an abnormal exit; its status or None."""
        with self.cond:
            self.cond.wait_for(lambda: pid in self.statuses, timeout)
            return self.statuses.pop(pid, None)
