"""Benchmark: what resuming a parked run costs per journalled call.

`replay_overhead_ms_per_call(executor)` is the figure (the grants benchmark may call it
with its own executor): a script makes N integration calls; the time to resume it from
a journal holding all N, minus the time of the same script with no calls, divided by N.
The live cost per call (a trivial handler, no network) is printed alongside. The last
line is one JSON object with the named figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox import Executor, HostCall, Journal, Limits, RunResult

SCRIPT = (
    "import time, random\n"
    "for i in range(input['n']):\n"
    "    seen = {'at': time.time(), 'r': random.random()}\n"
    "    integrations.get('svc', '/item/%d' % i, params=seen)\n"
    "result = input['n']\n"
)
LIMITS = Limits(wall_time_s=60, cpu_time_s=30, memory_mb=256)


def _answer(call: HostCall) -> Any:
    return {"status": 200, "headers": {}, "body_b64": ""}


def _timed(executor: Executor, n: int, journal: Journal | None) -> tuple[float, RunResult]:
    started = time.perf_counter()
    outcome = executor.run(
        SCRIPT, input={"n": n}, limits=LIMITS, on_call=_answer, journal=journal
    )
    if outcome.status != "succeeded":
        raise RuntimeError(f"benchmark run failed: {outcome.to_dict()}")
    return (time.perf_counter() - started) * 1000, outcome


def measure(executor: Executor, *, calls: int = 50, repeats: int = 7) -> dict[str, float]:
    """Median ms per call: live, and replayed from a journal, over the no-call baseline."""
    baseline, live, replayed = [], [], []
    for _ in range(repeats):
        baseline.append(_timed(executor, 0, None)[0])
        live_ms, outcome = _timed(executor, calls, None)
        live.append(live_ms)
        assert outcome.journal is not None
        journal = Journal.from_bytes(outcome.journal.to_bytes())
        replayed.append(_timed(executor, calls, journal)[0])
    base = statistics.median(baseline)
    return {
        "live_ms_per_call": round((statistics.median(live) - base) / calls, 4),
        "replay_overhead_ms_per_call": round((statistics.median(replayed) - base) / calls, 4),
        "journal_bytes_per_call": round(len(journal.to_bytes()) / calls, 1),
    }


def replay_overhead_ms_per_call(executor: Executor, *, calls: int = 50, repeats: int = 7) -> float:
    """Milliseconds a resume spends per journalled call (median, over a no-call baseline)."""
    return measure(executor, calls=calls, repeats=repeats)["replay_overhead_ms_per_call"]


def main() -> None:
    """Print the figures, then one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with Executor(idle_workers=2) as executor:
        _timed(executor, 1, None)  # warm the pool
        figures = measure(executor, calls=args.calls, repeats=args.repeats)
    for name, value in figures.items():
        print(f"{name:32} {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
