"""Benchmark: a trivial script through the sandbox's public API vs. in-process and spawn.

Prints p50/p99 latency and throughput for (1) `sandbox.Executor.run` with full
isolation, (2) the same script exec'd in-process with no isolation, (3) a new Python
process spawned per run; then the unique memory (USS) of an idle pre-forked worker.
The last line is one JSON object with the named figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox import Executor

SCRIPT = "x = input['n'] + 1\nresult = {'n': x}\n"


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100) of samples, nearest rank."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def latency(run: object, count: int, pause_s: float) -> list[float]:
    """Milliseconds per call of run(), one call at a time."""
    samples = []
    for i in range(count):
        started = time.perf_counter()
        run(i)  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
        if pause_s:
            time.sleep(pause_s)
    return samples


def throughput(run: object, total: int, threads: int) -> float:
    """Runs per second with `threads` callers sharing `total` runs."""
    counter = iter(range(total))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            run(i)  # type: ignore[operator]

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return total / (time.perf_counter() - started)


def uss_mb(pid: int) -> float:
    """Unique set size (private pages) of a process, in MiB."""
    private = 0
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
        for line in rollup:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                private += int(line.split()[1])
    return private / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--spawn-runs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--idle-workers", type=int, default=8)
    args = parser.parse_args()

    with Executor(idle_workers=args.idle_workers) as executor:

        def sandboxed(i: int) -> None:
            outcome = executor.run(SCRIPT, input={"n": i})
            assert outcome.ok and outcome.result == {"n": i + 1}, outcome

        for i in range(50):  # let the pool settle
            sandboxed(i)
        time.sleep(0.5)
        # Latency: one run at a time, with a short think time so the pool is refilled,
        # as for runs started by people; throughput: back to back from several threads.
        lat = latency(sandboxed, args.runs // 2, pause_s=0.002)
        # Idle workers as they normally are: pre-forked and warmed, nobody waiting.
        time.sleep(1.0)
        idle = executor.idle_pids()
        idle_uss = statistics.mean(uss_mb(pid) for pid in idle)
        zygote_uss = uss_mb(executor.zygote_pid or 0)
        rps = throughput(sandboxed, args.runs, args.threads)

    code = compile(SCRIPT, "<script>", "exec")

    def in_process(i: int) -> None:
        scope = {"input": {"n": i}}
        exec(code, scope)
        assert scope["result"] == {"n": i + 1}

    inproc = latency(in_process, args.runs, pause_s=0)
    inproc_rps = throughput(in_process, args.runs * 5, 1)

    spawn_source = (
        "import json,sys\ninput=json.loads(sys.argv[1])\n" + SCRIPT + "print(json.dumps(result))"
    )

    def spawned(i: int) -> None:
        out = subprocess.run(
            [sys.executable, "-I", "-c", spawn_source, json.dumps({"n": i})],
            capture_output=True, check=True, text=True,
        )
        assert json.loads(out.stdout) == {"n": i + 1}

    spawn = latency(spawned, args.spawn_runs, pause_s=0)
    spawn_rps = throughput(spawned, args.spawn_runs, args.threads)

    figures = {
        "p50_ms": round(statistics.median(lat), 3),
        "p99_ms": round(percentile(lat, 99), 3),
        "runs_per_s": round(rps, 1),
        "inprocess_p50_ms": round(statistics.median(inproc), 4),
        "inprocess_p99_ms": round(percentile(inproc, 99), 4),
        "inprocess_runs_per_s": round(inproc_rps, 1),
        "spawn_p50_ms": round(statistics.median(spawn), 3),
        "spawn_p99_ms": round(percentile(spawn, 99), 3),
        "spawn_runs_per_s": round(spawn_rps, 1),
        "ratio_vs_spawn": round(statistics.median(spawn) / statistics.median(lat), 2),
        "ratio_vs_inprocess": round(statistics.median(lat) / statistics.median(inproc), 1),
        "idle_worker_uss_mb": round(idle_uss, 2),
        "zygote_uss_mb": round(zygote_uss, 2),
        "idle_workers_measured": len(idle),
    }
    print(f"sandbox     p50 {figures['p50_ms']} ms  p99 {figures['p99_ms']} ms  "
          f"{figures['runs_per_s']} runs/s ({args.threads} threads)")
    print(f"in-process  p50 {figures['inprocess_p50_ms']} ms  "
          f"p99 {figures['inprocess_p99_ms']} ms  {figures['inprocess_runs_per_s']} runs/s")
    print(f"spawn       p50 {figures['spawn_p50_ms']} ms  p99 {figures['spawn_p99_ms']} ms  "
          f"{figures['spawn_runs_per_s']} runs/s")
    print(f"sandbox is {figures['ratio_vs_spawn']}x faster than spawning Python per run")
    print(f"idle worker USS {figures['idle_worker_uss_mb']} MiB "
          f"(zygote {figures['zygote_uss_mb']} MiB)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
