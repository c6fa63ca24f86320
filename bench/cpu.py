"""Benchmark: where a run's CPU goes, per process group, under load over HTTP.

Starts the embedded server (`scriptbox serve` on SQLite, in-process executor) or a
cluster (`scriptbox serve` + `--workers` `scriptbox worker` processes on PostgreSQL and
Redis, SCRIPTBOX_TEST_POSTGRES_URL and SCRIPTBOX_TEST_REDIS_URL), loads it with
`--clients` keep-alive clients posting runs with `wait` (trivial ones, or with `--slow`
ones that wait 100 ms on a loopback upstream), and reads from /proc what each group of
processes spent: the web process (gunicorn's arbiter and worker), the sandbox zygote and
idle workers below it (embedded), the Celery workers (with their forked children and
sandbox zygotes), PostgreSQL, Redis, this process (clients and upstream), and the whole
machine (which includes the sandbox's short-lived run processes, gone before they can be
read).
Also the context switches of the web process's threads per run.

The figures are CPU per run, so they hold up better than throughput on a noisy host;
compare two versions of the code in turns (`git checkout` between runs). The last line is
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.integrations.vault import generate_key
from app.testing import WebClient
from bench.cluster import SLOW, TRIVIAL, LeanClient, hammer, percentile, seed, start_upstream
from bench.scratch import redis_url as test_redis_url
from bench.scratch import scratch
from tests.conftest import make_app
from tests.distributed.cluster import Cluster, Process

TICKS = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (None once it is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (0 once it is gone)."""
    fields = stat_fields(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / TICKS


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICKS


def parent(pid: int) -> int:
    """The parent's pid (0 once the process is gone)."""
    fields = stat_fields(pid)
    return 0 if fields is None else int(fields[1])


def switches(pid: int) -> int:
    """Context switches of all threads of a process so far."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            text = (task / "status").read_text()
        except OSError:
            continue
        total += sum(int(n) for n in re.findall(r"ctxt_switches:\s+(\d+)", text))
    return total


def snapshot(groups: dict[str, set[int]]) -> dict[str, float]:
    """CPU seconds per group: the named pids, then PostgreSQL and Redis by command line."""
    seen = {name: sum(cpu_s(pid) for pid in pids) for name, pids in groups.items()}
    taken = set().union(*groups.values())
    seen["postgresql"] = seen["redis"] = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in taken:
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        for name in ("postgres", "redis"):
            if name.encode() in command:
                seen["postgresql" if name == "postgres" else name] += cpu_s(int(entry.name))
    seen["machine"] = machine_busy_s()
    return seen


def measure(web: Process, workers: list[Process], url: str, app: Any, user_id: int,
            args: argparse.Namespace) -> dict[str, Any]:
    """Load the server; CPU per run of each group while it ran."""
    lean = [LeanClient(WebClient(app, url, user_id)) for _ in range(args.clients)]
    source = SLOW if args.slow else TRIVIAL

    def one(client: int) -> None:
        status, answer = lean[client].post("/api/f/lab/runs", {"source": source, "wait": 60})
        if status != 200 or answer.get("status") != "succeeded":
            raise RuntimeError(f"{status} {answer}")

    hammer(args.clients, 2.0, one)  # warm: connections, sandbox workers, caches
    # The serving process: gunicorn's worker, the child of its arbiter; below it, the
    # embedded executor's sandbox zygote and idle workers.
    below = web.pids() - {web.popen.pid}
    serving = next(pid for pid in below if parent(pid) == web.popen.pid)
    groups = {"web": {web.popen.pid, serving}, "web_sandbox": below - {serving},
              "workers": set().union(*(w.pids() for w in workers)), "bench": {os.getpid()}}
    before, switched = snapshot(groups), switches(serving)
    started = time.monotonic()
    latencies = hammer(args.clients, args.seconds, one)
    elapsed = time.monotonic() - started
    after, switched = snapshot(groups), switches(serving) - switched
    runs = len(latencies)
    figures: dict[str, Any] = {
        "runs_per_s": round(runs / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "web_switches_per_run": round(switched / runs, 1),
    }
    for name in after:
        spent = after[name] - before[name]
        figures[f"{name}_ms_per_run"] = round(spent / runs * 1000, 2)
        figures[f"{name}_cores"] = round(spent / elapsed, 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cluster", action="store_true", help="PostgreSQL, Redis, Celery")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=4, help="per worker")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--slow", action="store_true", help="runs wait 100 ms upstream")
    args = parser.parse_args()
    upstream_server, upstream = start_upstream()
    try:
        if args.cluster:
            with scratch("cpu") as space:
                figures = run(args, upstream, space.database_url, space.redis_url, space.prefix)
        else:
            figures = run(args, upstream, None, test_redis_url(), "unused")
    finally:
        upstream_server.shutdown()
    setup = {"cluster": args.cluster, "workers": args.workers if args.cluster else 0,
             "clients": args.clients, "slow": args.slow}
    for key, value in figures.items():
        print(f"{key:26s} {value}")
    print(json.dumps({**setup, **figures}))


def run(args: argparse.Namespace, upstream: str, database_url: str | None, redis_url: str,
        prefix: str) -> dict[str, Any]:
    """Start the server (on SQLite when database_url is None), measure it, stop it."""
    folder = Path(tempfile.mkdtemp(prefix="scriptbox-cpu-"))
    vault_key = generate_key()
    settings = {"SCRIPTBOX_MAX_RUNS_PER_USER": "100", "SCRIPTBOX_HEARTBEAT_S": "2",
                "SCRIPTBOX_MAX_WAITING_REQUESTS_PER_USER": "100",
                "SCRIPTBOX_MAX_WAITING_REQUESTS": "100",
                "SCRIPTBOX_PRIVATE_NETWORK_ALLOW": "127.0.0.1/32"}
    if database_url is not None:
        app = make_app(folder, DATABASE_URL=database_url, SECRET_KEY="bench",
                       SECRET_KEYS=[vault_key])
        settings["SCRIPTBOX_IDLE_WORKERS"] = "2"
    else:
        app = make_app(folder, SECRET_KEY="bench", SECRET_KEYS=[vault_key])
        settings.update(SCRIPTBOX_EXECUTOR="inprocess",
                        SCRIPTBOX_IDLE_WORKERS=str(args.clients))
    user_id = seed(app, upstream)
    cluster = Cluster(database_url=app.config["DATABASE_URL"], redis_url=redis_url,
                      prefix=prefix, secret_key="bench", vault_key=vault_key, extra=settings)
    try:
        web, url = cluster.web(threads=max(8, args.clients))
        workers = ([cluster.worker(concurrency=args.concurrency) for _ in range(args.workers)]
                   if database_url is not None else [])
        return measure(web, workers, url, app, user_id, args)
    finally:
        cluster.close()
        app.extensions["db_engine"].dispose()

if __name__ == "__main__":
    main()
