"""The journal as data: its bytes, and the host's checks of what a worker sends."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from sandbox import Executor, Journal, JournalError
from sandbox.journal import MAX_VALUES, CallIdentity, JournalCall
from sandbox.protocol import ProtocolError
from sandbox.replay import Replay, ValuesOverflow
from tests.sandbox.replaying import LIMITS, Host

SEES_ALL_KINDS = (
    "import time, random, uuid\n"
    "seen = [time.time(), time.monotonic(), time.perf_counter(), random.Random().random(),\n"
    "        str(uuid.uuid1()), str(uuid.uuid4())]\n"
    "time.sleep(0.01)\n"
    "integrations.get('svc', '/first', params={'seen': seen})\n"
    "integrations.get('svc', '/park')\n"
)


def test_the_journal_survives_bytes_and_rejects_what_it_cannot_read(executor: Executor) -> None:
    parked = executor.run(SEES_ALL_KINDS, limits=LIMITS, on_call=Host(park_at={2}))
    assert parked.journal is not None and len(parked.journal) == 1
    kinds = [kind for kind, _ in parked.journal.values]
    # importing random seeds the run generator first
    assert kinds == ["seed", "time", "monotonic", "perf", "seed", "uuid1", "uuid4", "sleep"]
    data = parked.journal.to_bytes()
    assert Journal.from_bytes(data) == parked.journal
    assert json.loads(data)["v"] == 1
    broken: list[Callable[[dict[str, Any]], None]] = [
        lambda d: d.update(v=2),
        lambda d: d.update(values=[["time", "soon"]]),
        lambda d: d.update(values=[["os.environ", 1]]),
        lambda d: d.update(calls=[{"op": "request"}]),
        lambda d: d.update(wall=-1),
    ]
    for breaking in broken:
        raw = json.loads(data)
        breaking(raw)
        with pytest.raises(JournalError):
            Journal.from_bytes(json.dumps(raw).encode())
    with pytest.raises(JournalError):
        Journal.from_bytes(b"\x00not json")


def test_the_host_checks_what_a_worker_claims_to_have_seen() -> None:
    # The worker runs hostile code: its journal values are checked, and capped, by the host.
    replay = Replay(None)
    with pytest.raises(ProtocolError):
        replay.take_values({"vals": [["time", "later"]]})
    with pytest.raises(ProtocolError):
        replay.take_values({"vals": [["environ", 1]]})
    with pytest.raises(ValuesOverflow):
        replay.take_values({"vals": [["seed", 1]] * (MAX_VALUES + 1)})
    assert replay.finish(wall_s=0.0).values == []


def test_a_reply_with_any_text_survives_the_journal_bytes() -> None:
    identity = CallIdentity.of("request", {"service": "svc", "method": "GET", "path": "/\ud800"})
    reply = {"ok": False, "error": {"code": "unknown_integration", "message": "é \ud800 ✓"}}
    journal = Journal(calls=[JournalCall(identity, reply, 0)])
    data = journal.to_bytes()
    assert data.decode("ascii")  # storable as text, as the app's vault wants it
    assert Journal.from_bytes(data) == journal
