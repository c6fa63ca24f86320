"""The host's side of a journal: answer replayed calls, skip replayed output, record the rest.

One `Replay` per run (an empty journal for a fresh run). The host, not the worker,
decides whether a call matches the journal: the worker runs the script and could lie.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sandbox.journal import (
    MAX_VALUES,
    CallIdentity,
    Journal,
    JournalCall,
    too_many_values,
    valid_value,
)
from sandbox.protocol import ProtocolError


class Diverged(Exception):
    """The resumed run did not retrace its steps; the message says how, for the scripter."""


class ValuesOverflow(Exception):
    """The worker sent more values than a journal keeps."""


class Replay:
    """A run's journal as the host builds it, with the journal it resumes from (if any)."""

    def __init__(self, journal: Journal | None, *, max_bytes: int = 1 << 62) -> None:
        base = journal if journal is not None else Journal()
        # Every reply is kept while the run lasts (it may park at any call): the budget
        # keeps a script that downloads a lot from holding the host's memory.
        self._max_bytes = max_bytes
        self._bytes = len(base.to_bytes()) if base.calls else 0
        self.overflowed = False
        self.journal = replace(base, calls=list(base.calls), values=list(base.values))
        self.replay_calls = len(base.calls)
        self.replay_values = len(base.values)
        self._skip = base.output_chars
        self._output_chars = 0
        self._cpu = base.cpu_s

    def take_values(self, message: dict[str, Any]) -> None:
        """Append the live values a call or done frame carries, and note its CPU time.

        Raises ProtocolError for malformed values, ValuesOverflow past the cap.
        """
        values = message.get("vals")
        if isinstance(values, list) and values:
            if not all(valid_value(entry) for entry in values):
                raise ProtocolError("the worker sent malformed journal values")
            if len(self.journal.values) + len(values) > MAX_VALUES:
                raise ValuesOverflow(too_many_values())
            self.journal.values.extend(values)
        cpu = message.get("cpu")
        if isinstance(cpu, int | float) and not isinstance(cpu, bool):
            self._cpu = max(self._cpu, float(cpu))

    def journalled_reply(self, index: int, identity: CallIdentity, seen: Any) -> Any:
        """The journalled reply of call `index` (0-based), or None when the call is live.

        Raises Diverged when the call is not the one the first run made there.
        """
        if index < self.replay_calls:
            entry = self.journal.calls[index]
            _check_call(index, entry, identity)
            _check_seen(f"before call {index + 1}", entry.values_before, seen)
            return entry.reply
        if index == self.replay_calls and self.replay_calls + self.replay_values > 0:
            _check_seen(f"before call {index + 1}", self.replay_values, seen)
        return None

    def record(
        self, identity: CallIdentity, reply: dict[str, Any], seen: Any, *, size: int
    ) -> None:
        """Journal a live call and the reply the host gave (`size`: its frame's bytes)."""
        self._bytes += size
        if self._bytes > self._max_bytes:
            self.overflowed = True
            self.journal.calls.clear()  # a partial journal would replay wrongly: keep none
        if self.overflowed:
            return
        before = seen if isinstance(seen, int) and seen >= 0 else len(self.journal.values)
        self.journal.calls.append(JournalCall(identity, reply, before))

    def check_done(self, calls: int, *, ended: str = "") -> None:
        """A run that ends must have made every journalled call first."""
        if calls < self.replay_calls:
            how = f" ({ended[:300]})" if ended else ""
            raise Diverged(
                f"the resumed run did not retrace its steps: it ended{how} after "
                f"{calls} integration calls, but the first run made {self.replay_calls} "
                "before it paused"
            )

    def new_output(self, text: str) -> str:
        """The part of this output the first run did not deliver yet."""
        self._output_chars += len(text)
        if self._skip <= 0:
            return text
        skipped = text[: self._skip]
        self._skip -= len(skipped)
        return text[len(skipped) :]

    def finish(self, *, wall_s: float) -> Journal | None:
        """The journal as it stands now, with the time used so far; None once overflowed."""
        if self.overflowed:
            return None
        journal = self.journal
        journal.output_chars = max(self._output_chars, journal.output_chars)
        journal.wall_s = max(wall_s, journal.wall_s)
        journal.cpu_s = self._cpu
        return replace(journal, calls=list(journal.calls), values=list(journal.values))


def _check_call(index: int, entry: JournalCall, identity: CallIdentity) -> None:
    expected = entry.identity
    if identity == expected:
        return
    prefix = f"the resumed run did not retrace its steps: call {index + 1} was "
    if (identity.op, identity.service, identity.method, identity.path) == (
        expected.op,
        expected.service,
        expected.method,
        expected.path,
    ):
        raise Diverged(
            f"{prefix}{expected.describe()} the first time too, but with different arguments"
        )
    raise Diverged(f"{prefix}{expected.describe()} the first time, now {identity.describe()}")


def _check_seen(where: str, expected: int, seen: Any) -> None:
    if seen != expected:
        raise Diverged(
            "the resumed run did not retrace its steps: the first run read clocks, random "
            f"seeds or uuids {expected} times {where}, the resumed run {seen} times"
        )
