"""A run's journal: what a script has seen so far, so a parked run can be replayed.

DESIGN §4 "Durable pauses": a parked run holds no process. To resume it, a new worker
runs the script again from the top and is fed, in order, every host reply and every
non-deterministic value (clock readings, sleeps, random seeds, uuids) the first run saw;
from the first new call on it runs live. Plain data and the standard library only: the
host stores the journal (encrypted, by the app) and the worker replays its values.

Values are recorded in the worker and travel to the host with the next call (or the
final `done` frame): reading the clock never costs a round trip.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from sandbox.store_ops import STORE_OPS, describe_store_call

VERSION = 1
REPLAY_DIVERGED = "replay_diverged"
# Every value a script reads is kept until the run ends and sent with the next call;
# the cap keeps a clock-polling loop from growing frames and the stored journal unbounded.
MAX_VALUES = 20_000
# The longest entry (a 128-bit seed: ["seed",<39 digits>],) is 49 bytes; frames that carry
# values are allowed this much on top of their other content.
VALUES_FRAME_BYTES = MAX_VALUES * 64

# Value kinds. Clocks are kept as integer nanoseconds, one kind per clock.
WALL_CLOCK = "time"
MONOTONIC = "monotonic"
PERF_COUNTER = "perf"
SLEEP = "sleep"
SEED = "seed"
UUID1 = "uuid1"
UUID4 = "uuid4"
KINDS = frozenset({WALL_CLOCK, MONOTONIC, PERF_COUNTER, SLEEP, SEED, UUID1, UUID4})
# Clocks that must never run backwards, even when a run resumes on another machine.
_STEADY_CLOCKS = frozenset({MONOTONIC, PERF_COUNTER})
_READINGS = {
    WALL_CLOCK: "read the clock",
    MONOTONIC: "read the monotonic clock",
    PERF_COUNTER: "read the performance counter",
    SLEEP: "slept",
    SEED: "seeded a random generator",
    UUID1: "made a uuid1",
    UUID4: "made a uuid4",
}

class ParkRun(Exception):
    """Raised by a host call handler: stop this run now, it will be resumed from its journal.

    The call being made when it is raised is not journalled; on resume it is asked again.
    """


class ReplayDiverged(BaseException):
    """The replayed script asked for something else than the journal holds.

    A BaseException so `except Exception:` in a script does not swallow it.
    """

    code = REPLAY_DIVERGED


class JournalFull(BaseException):
    """The script read more values than a journal keeps (error code `call_limit`)."""

    code = "call_limit"


class JournalError(ValueError):
    """Bytes that are not a journal this version can read."""


def too_many_values(limit: int = MAX_VALUES) -> str:
    """Why a run that read more values than a journal keeps ends (code `call_limit`)."""
    return (
        f"the script read clocks, random seeds or uuids more than {limit} times; each "
        "reading is recorded so that a paused run can resume"
    )


def args_hash(args: dict[str, Any]) -> str:
    """A stable hash of a call's arguments (canonical JSON, sorted keys)."""
    canonical = json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class CallIdentity:
    """What makes two host calls the same call: op, service, method, path, arguments."""

    op: str
    service: str
    method: str
    path: str
    args_hash: str

    @classmethod
    def of(cls, op: str, args: dict[str, Any]) -> CallIdentity:
        """The identity of a call as the worker sent it."""
        # A store call's key stands where a request's path does: a replay that diverges
        # names it ("was store.get('seen') the first time, now store.get('last')").
        path = args.get("key", "") if op in STORE_OPS else args.get("path", "")
        return cls(
            op=op,
            service=str(args.get("service", "")),
            method=str(args.get("method", "")),
            path=str(path),
            args_hash=args_hash(args),
        )

    def describe(self) -> str:
        """The call as a scripter wrote it, e.g. integrations.request('github', 'GET', '/user')."""
        if self.op == "request":
            return f"integrations.request({self.service!r}, {self.method!r}, {self.path!r})"
        if self.op == "require":
            return f"integrations.require({self.service!r})"
        if self.op in STORE_OPS:
            return describe_store_call(self.op, self.path)
        return f"integrations.{self.op}()"


@dataclass
class JournalCall:
    """One journalled host call: its identity, the reply given, and the values seen before it."""

    identity: CallIdentity
    reply: dict[str, Any]
    values_before: int

    def to_json(self) -> dict[str, Any]:
        """The call as stored."""
        ident = self.identity
        return {
            "op": ident.op,
            "service": ident.service,
            "method": ident.method,
            "path": ident.path,
            "hash": ident.args_hash,
            "reply": self.reply,
            "values": self.values_before,
        }

    @classmethod
    def from_json(cls, data: Any) -> JournalCall:
        """Read a stored call; JournalError if it is malformed."""
        if not isinstance(data, dict) or not isinstance(data.get("reply"), dict):
            raise JournalError("journal call is malformed")
        texts = [data.get(key) for key in ("op", "service", "method", "path", "hash")]
        values = data.get("values")
        if not all(isinstance(text, str) for text in texts) or not isinstance(values, int):
            raise JournalError("journal call is malformed")
        if isinstance(values, bool) or values < 0:
            raise JournalError("journal call is malformed")
        op, service, method, path, digest = (str(text) for text in texts)
        return cls(CallIdentity(op, service, method, path, digest), data["reply"], values)


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_seconds(value: Any) -> TypeGuard[float]:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def valid_value(entry: Any) -> bool:
    """True for a well-formed value entry: [kind, value]."""
    if not isinstance(entry, list) or len(entry) != 2 or entry[0] not in KINDS:
        return False
    kind, value = entry
    if kind in (UUID1, UUID4):
        return isinstance(value, str) and len(value) == 32
    if kind == SLEEP:
        return _is_seconds(value)
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class Journal:
    """What a run has seen so far: host calls with their replies, values, output, time used."""

    calls: list[JournalCall] = field(default_factory=list)
    values: list[list[Any]] = field(default_factory=list)
    output_chars: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0

    def __len__(self) -> int:
        return len(self.calls)

    def __bool__(self) -> bool:
        # A journal with no calls yet still holds values and time: never falsy.
        return True

    def to_bytes(self) -> bytes:
        """Compact, versioned JSON, ASCII only.

        ASCII because replies may hold lone surrogates (a script's own strings echoed back),
        which UTF-8 cannot carry; JSON escapes them and reads them back unchanged.
        """
        data = {
            "v": VERSION,
            "calls": [call.to_json() for call in self.calls],
            "values": self.values,
            "output": self.output_chars,
            "wall": self.wall_s,
            "cpu": self.cpu_s,
        }
        return json.dumps(data, separators=(",", ":")).encode("ascii")

    @classmethod
    def from_bytes(cls, data: bytes) -> Journal:
        """Read `to_bytes` output; JournalError if it is not a journal of this version."""
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise JournalError(f"journal is not JSON: {exc}") from None
        if not isinstance(raw, dict) or raw.get("v") != VERSION:
            raise JournalError(f"journal is not version {VERSION}")
        calls, values = raw.get("calls"), raw.get("values")
        if not isinstance(calls, list) or not isinstance(values, list):
            raise JournalError("journal calls or values are missing")
        if not all(valid_value(entry) for entry in values):
            raise JournalError("journal holds a malformed value")
        output, wall, cpu = raw.get("output"), raw.get("wall"), raw.get("cpu")
        if not (_is_count(output) and _is_seconds(wall) and _is_seconds(cpu)):
            raise JournalError("journal output length or times are malformed")
        return cls(
            calls=[JournalCall.from_json(call) for call in calls],
            values=values,
            output_chars=output,
            wall_s=float(wall),
            cpu_s=float(cpu),
        )


def _live_reading(kind: str) -> int:
    if kind == MONOTONIC:
        return time.monotonic_ns()
    if kind == PERF_COUNTER:
        return time.perf_counter_ns()
    return time.time_ns()


class ValueLog:
    """The worker's side: hands out journalled values first, then records live ones."""

    def __init__(self, replay: list[list[Any]], *, limit: int = MAX_VALUES) -> None:
        self._replay = replay
        self._limit = limit
        self._taken = 0
        self._new: list[list[Any]] = []
        self._last: dict[str, int] = {}
        self._offsets: dict[str, int] = {}
        self.diverged: str | None = None

    @property
    def seen(self) -> int:
        """How many values the script has read so far (replayed and live)."""
        return self._taken

    def frame_fields(self) -> dict[str, Any]:
        """What the next call or the final frame carries: new live values, count, CPU time."""
        new, self._new = self._new, []
        return {"vals": new, "seen": self._taken, "cpu": time.process_time()}

    def _diverge(self, message: str) -> ReplayDiverged:
        self.diverged = self.diverged or message
        return ReplayDiverged(self.diverged)

    def take(self, kind: str, live: Callable[[], Any]) -> Any:
        """The next value of this kind: the journalled one while replaying, else live()."""
        if self.diverged is not None:
            raise ReplayDiverged(self.diverged)
        if self._taken < len(self._replay):
            want_kind, value = self._replay[self._taken]
            if want_kind != kind:
                raise self._diverge(
                    f"the resumed run {_READINGS[kind]} where the first run "
                    f"{_READINGS[want_kind]} (value {self._taken + 1}); a script must do the "
                    "same things in the same order to resume"
                )
            self._taken += 1
            return value
        if self._taken >= self._limit:
            raise JournalFull(too_many_values(self._limit))
        value = live()
        self._taken += 1
        self._new.append([kind, value])
        return value

    def reading(self, kind: str) -> int:
        """A clock reading in nanoseconds; steady clocks continue where the journal left off."""
        if self._taken < len(self._replay):
            value = int(self.take(kind, lambda: 0))
        else:
            if kind in _STEADY_CLOCKS and kind in self._last and kind not in self._offsets:
                # A resumed run may be on another machine (or after a reboot): continue
                # from the last reading, so the park itself takes no monotonic time.
                self._offsets[kind] = self._last[kind] - _live_reading(kind)
            offset = self._offsets.get(kind, 0)
            value = int(self.take(kind, lambda: max(_live_reading(kind) + offset,
                                                    self._last.get(kind, 0))))
        self._last[kind] = value
        return value

    def sleep(self, seconds: float) -> None:
        """Sleep live; a journalled sleep returns at once (it was already slept)."""
        if self._taken < len(self._replay):
            slept = self.take(SLEEP, lambda: seconds)
            if slept != seconds:
                raise self._diverge(
                    f"the resumed run slept {seconds:g} s where the first run slept {slept:g} s"
                    f" (value {self._taken})"
                )
            return
        self.take(SLEEP, lambda: seconds)
        time.sleep(seconds)
