"""Benchmark: the web stack's floor under `http_vs_sandbox`, and how much of the rest is the
app's own work.

Three phases in turns, each with `--clients` closed-loop clients posting trivial runs:
1. the sandbox alone (`Executor.run`, as `bench/cluster.py` measures it);
2. the floor: the same gunicorn worker, settings and access log as `scriptbox serve`, and
   Flask, serving `POST /api/f/lab/runs` by handing the body's source straight to a
   sandbox executor: no sign-in, validation, database, run engine or events;
3. the embedded default (`scriptbox serve` on SQLite), as `bench/cluster.py` measures it.

With both cores busy, runs/s are CPU arithmetic: a ratio r to the sandbox alone means
each run costs the machine 1/r sandbox runs. So `1/floor - 1` is what gunicorn, Flask and
the HTTP clients add per run, `1/app - 1/floor` what the app's own work adds (in sandbox
runs), and `1/0.6 - 1/floor` what the issue's target `http_vs_sandbox >= 0.6` leaves
for it. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster import (
    TRIVIAL,
    embedded_server,
    http_figures,
    sandbox_runs_per_s,
    start_upstream,
)
from bench.scratch import redis_url as test_redis_url

TARGET = 0.6


def serve_floor(port: int, clients: int) -> None:
    """Serve the floor app on gunicorn as `scriptbox serve` configures it (this process)."""
    from flask import Flask, jsonify, request

    from app import serving
    from sandbox import Executor

    app = Flask("floor")
    started: list[Executor] = []
    lock = threading.Lock()

    @app.post("/api/f/lab/runs")
    def run() -> Any:
        with lock:  # after gunicorn's fork: the zygote must belong to the worker
            if not started:
                started.append(Executor(idle_workers=clients).start())
        outcome = started[0].run(request.get_json()["source"])
        return jsonify(status="succeeded" if outcome.ok else "failed", result=outcome.result)

    class FloorServer(serving.ScriptboxServer):
        def load_config(self) -> None:
            super().load_config()
            self.cfg.set("post_worker_init", lambda _worker: None)  # no run engine here

    settings = serving.options(host="127.0.0.1", port=port, workers=1, threads=8,
                               graceful_timeout=5)
    FloorServer(app, settings, on_ready=lambda: None).run()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_floor(clients: int) -> tuple[subprocess.Popen[bytes], str]:
    """The floor server as its own process (as `scriptbox serve` is); its URL once it listens."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--clients", str(clients)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the floor server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_floor(args.serve, args.clients)
        return

    upstream_server, upstream = start_upstream()
    floor_process, floor_url = start_floor(args.clients)
    floor_clients = [SimpleNamespace(base_url=floor_url, cookie="", csrf="")
                     for _ in range(args.clients)]
    rounds = []
    try:
        with embedded_server(Path(tempfile.mkdtemp(prefix="scriptbox-floor-")), upstream,
                             test_redis_url(), args.clients) as browsers:
            for number in range(args.rounds):
                sandbox = sandbox_runs_per_s(args.clients, args.seconds)
                floor = http_figures(floor_clients, TRIVIAL, args.clients,  # duck-typed browsers
                                     args.seconds)
                app = http_figures(browsers, TRIVIAL, args.clients, args.seconds)
                figures = {
                    "sandbox_runs_per_s": sandbox,
                    "floor_runs_per_s": floor["http_runs_per_s"],
                    "floor_p50_ms": floor["http_p50_ms"],
                    "app_runs_per_s": app["http_runs_per_s"],
                    "app_p50_ms": app["http_p50_ms"],
                    "floor_vs_sandbox": round(floor["http_runs_per_s"] / sandbox, 3),
                    "app_vs_sandbox": round(app["http_runs_per_s"] / sandbox, 3),
                }
                print(f"round {number + 1}: {figures}", flush=True)
                rounds.append(figures)
    finally:
        floor_process.terminate()
        floor_process.wait(timeout=30)
        upstream_server.shutdown()

    floor_ratio = statistics.median(r["floor_vs_sandbox"] for r in rounds)
    app_ratio = statistics.median(r["app_vs_sandbox"] for r in rounds)
    app_work = 1 / app_ratio - 1 / floor_ratio  # in sandbox runs per run
    allowed = 1 / TARGET - 1 / floor_ratio
    summary = {
        "clients": args.clients,
        "sandbox_runs_per_s": statistics.median(r["sandbox_runs_per_s"] for r in rounds),
        "floor_vs_sandbox": round(floor_ratio, 2),
        "app_vs_sandbox": round(app_ratio, 2),
        "stack_work_per_run": round(1 / floor_ratio - 1, 2),
        "app_work_per_run": round(app_work, 2),
        "app_work_allowed_by_target": round(allowed, 2),
        "app_work_cut_needed": round(max(0.0, 1 - allowed / app_work), 2),
        "rounds_floor_vs_sandbox": [r["floor_vs_sandbox"] for r in rounds],
        "rounds_app_vs_sandbox": [r["app_vs_sandbox"] for r in rounds],
    }
    print("work per run, in sandbox runs: gunicorn + Flask + clients"
          f" {summary['stack_work_per_run']}, the app's own {summary['app_work_per_run']},"
          f" the target leaves the app {summary['app_work_allowed_by_target']}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
