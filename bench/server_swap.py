"""Benchmark (an experiment, needs `pip install granian`): what a compiled HTTP server
would buy the embedded default's `http_vs_sandbox`.

The same app, seeded alike on two SQLite files, is served twice: by `scriptbox serve`
(gunicorn, one gthread worker of 8 threads) and by granian's WSGI interface (its HTTP in
Rust, the app on 8 Python threads; one worker). The phases run in turns with the sandbox
alone, as in `bench/cluster.py`: `POST /runs` with `wait`, p50 from one client, runs/s
from `--clients`. Granian serves HTTP only here: flask-sock's websockets need the WSGI
server's socket, which granian does not hand over, so the pages' live updates would have
to move to an ASGI app before granian could serve Scriptbox. The last line is one JSON
object: the medians, and each round's ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.integrations.vault import generate_key
from app.testing import WebClient
from bench.cluster import TRIVIAL, http_figures, sandbox_runs_per_s, seed, start_upstream
from bench.scratch import redis_url as test_redis_url
from tests.conftest import make_app
from tests.distributed.cluster import Cluster, Process

ROOT = Path(__file__).resolve().parent.parent


def granian_app() -> Any:
    """The app as `scriptbox serve` builds it in its worker, for granian's `--factory`."""
    from app import create_app, extensions

    app = create_app()
    extensions.heartbeat(app).start()
    return app


def seeded_server(upstream: str, clients: int) -> tuple[Any, int, Cluster]:
    """A migrated app on its own SQLite file with the benchmark's scripter, and the
    settings of a server process for it (none started)."""
    vault_key = generate_key()
    app = make_app(Path(tempfile.mkdtemp(prefix="scriptbox-swap-")), SECRET_KEY="bench",
                   SECRET_KEYS=[vault_key])
    user_id = seed(app, upstream)
    server = Cluster(database_url=app.config["DATABASE_URL"], redis_url=test_redis_url(),
                     prefix="unused", secret_key="bench", vault_key=vault_key,
                     extra={"SCRIPTBOX_EXECUTOR": "inprocess",
                            "SCRIPTBOX_MAX_RUNS_PER_USER": "100",
                            "SCRIPTBOX_MAX_WAITING_REQUESTS_PER_USER": "100",
                            "SCRIPTBOX_MAX_WAITING_REQUESTS": "100",
                            "SCRIPTBOX_IDLE_WORKERS": str(clients),
                            "SCRIPTBOX_HEARTBEAT_S": "2"})
    return app, user_id, server


def start_granian(server: Cluster, threads: int) -> str:
    """granian serving the app on the server's public port; its URL once it answers."""
    port = server.public_port
    process = Process("granian", [
        sys.executable, "-m", "granian", "--interface", "wsgi", "--factory",
        "bench.server_swap:granian_app", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--blocking-threads", str(threads), "--no-access-log",
        "--log-level", "warning",
    ], {**server.env, "PYTHONPATH": str(ROOT)}, "")
    server.processes.append(process)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                return url
        except requests.ConnectionError:
            time.sleep(0.2)
    raise RuntimeError(f"granian did not start:\n{process.output()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    try:
        import granian  # noqa: F401
    except ImportError:
        raise SystemExit("this experiment needs granian: pip install granian") from None

    upstream_server, upstream = start_upstream()
    servers: list[Cluster] = []
    rounds = []
    try:
        app, user_id, gunicorn = seeded_server(upstream, args.clients)
        servers.append(gunicorn)
        _web, gunicorn_url = gunicorn.web()
        other_app, other_user, granian_server = seeded_server(upstream, args.clients)
        servers.append(granian_server)
        granian_url = start_granian(granian_server, threads=8)
        browsers = {
            "gunicorn": [WebClient(app, gunicorn_url, user_id) for _ in range(args.clients)],
            "granian": [WebClient(other_app, granian_url, other_user)
                        for _ in range(args.clients)],
        }
        for number in range(args.rounds):
            figures: dict[str, Any] = {
                "sandbox_runs_per_s": sandbox_runs_per_s(args.clients, args.seconds)}
            for name, clients in browsers.items():
                http = http_figures(clients, TRIVIAL, args.clients, args.seconds)
                figures[f"{name}_runs_per_s"] = http["http_runs_per_s"]
                figures[f"{name}_p50_ms"] = http["http_p50_ms"]
                figures[f"{name}_vs_sandbox"] = round(
                    http["http_runs_per_s"] / figures["sandbox_runs_per_s"], 3)
            figures["granian_vs_gunicorn"] = round(
                figures["granian_runs_per_s"] / figures["gunicorn_runs_per_s"], 3)
            print(f"round {number + 1}: {figures}", flush=True)
            rounds.append(figures)
    finally:
        for server in servers:
            for process in server.processes:
                process.stop()
        upstream_server.shutdown()

    summary: dict[str, Any] = {"clients": args.clients}
    for key in rounds[0]:
        summary[key] = round(statistics.median(r[key] for r in rounds), 3)
    for key in ("gunicorn_vs_sandbox", "granian_vs_sandbox", "granian_vs_gunicorn"):
        summary[f"rounds_{key}"] = [r[key] for r in rounds]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
