"""Benchmark: integrations.request from a sandboxed script vs. a direct requests call.

A tiny loopback JSON API (API-key protected) is called (1) by a script running in the
sandbox through the broker, which times each call itself with time.perf_counter() and
returns the timings as its result (so the figure is the whole path: worker → host →
account lookup → credential injection → HTTP → call log → worker), and (2) by a direct
`requests.Session` in this process. Both reuse connections. The last line is one JSON
object with the named figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from app import create_app, db, extensions, sandboxes
from app.integrations.call_context import RunContext
from app.migrate import upgrade
from app.models import Integration, Role
from app.services import connections, people
from sandbox import Limits

API_KEY = "bench-api-key"
SCRIPT = """
import time
timings = []
for i in range(input["calls"]):
    started = time.perf_counter()
    resp = integrations.get("bench", "/items", params={"page": i})
    timings.append((time.perf_counter() - started) * 1000)
    if resp.status != 200:
        raise ValueError(resp.status)
result = timings
"""


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


@Request.application
def api(request: Request) -> Response:
    """A small JSON answer for a valid key."""
    if request.headers.get("X-API-Key") != API_KEY:
        return Response('{"error": "unauthorized"}', 401, content_type="application/json")
    body = json.dumps({"page": request.args.get("page"), "items": list(range(10))})
    return Response(body, content_type="application/json")


def serve_api(ready: Any) -> None:
    """Serve the API on a free loopback port (in a child process)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", 0, api, threaded=True)
    ready.put(server.server_port)
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # The API runs in its own process, as a real service would: in this process it would
    # compete with the broker for the GIL and skew the comparison.
    import multiprocessing

    ready = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve_api, args=(ready,), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{ready.get(timeout=30)}"
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite", "SECRET_KEY": "b",
                          "IDLE_WORKERS": 2, "PRIVATE_NETWORK_ALLOW": "127.0.0.1/32"})
        app.instance_path = tmp
        upgrade(app)
        with app.app_context():
            session = db.session()
            facility = people.create_facility(session, name="Bench", slug="bench")
            integration = Integration(
                facility_id=facility.id, key="bench", name="Bench", auth_mode="api_key",
                base_url=base, credential_fields=["api_key"],
                placements=[{"location": "header", "name": "X-API-Key", "template": "{api_key}"}],
            )
            session.add(integration)
            session.flush()
            connections.connect_with_credentials(
                session, integration=integration, owner="master", user_id=None, label="",
                fields={"api_key": API_KEY}, parameters={}, vault=extensions.vault(app))
            user = people.create_user(session, email="b@example.com", name="B",
                                      password="bench-password")
            people.set_membership(session, user=user, facility=facility, role=Role.admin)
            session.commit()
            broker = extensions.build_broker(app, vault=extensions.vault(app))
            context = RunContext(facility_id=facility.id, user_id=user.id)
            executor = sandboxes.executor(app)
            proxy: list[float] = []
            for _ in range(args.rounds):
                outcome = executor.run(SCRIPT, input={"calls": args.calls},
                                       on_call=broker.handler(context),
                                       limits=Limits(wall_time_s=300, max_calls=args.calls + 1))
                assert outcome.ok, outcome.error
                proxy.extend(outcome.result[5:])  # the first calls open connections
            executor.close()
        direct: list[float] = []
        http = requests.Session()
        for _ in range(args.rounds):
            for i in range(args.calls):
                started = time.perf_counter()
                answer = http.get(f"{base}/items", params={"page": i},
                                  headers={"X-API-Key": API_KEY}, timeout=10)
                answer.json()
                direct.append((time.perf_counter() - started) * 1000)
    server.terminate()
    figures = {
        "proxy_p50_ms": round(statistics.median(proxy), 3),
        "proxy_p99_ms": round(percentile(proxy, 99), 3),
        "direct_p50_ms": round(statistics.median(direct), 3),
        "direct_p99_ms": round(percentile(direct, 99), 3),
        "overhead_ratio": round(statistics.median(proxy) / statistics.median(direct), 2),
        "calls_measured": len(proxy),
    }
    print(f"through the sandbox and broker: p50 {figures['proxy_p50_ms']} ms, "
          f"p99 {figures['proxy_p99_ms']} ms")
    print(f"direct requests call:           p50 {figures['direct_p50_ms']} ms, "
          f"p99 {figures['direct_p99_ms']} ms")
    print(f"overhead ratio at p50: {figures['overhead_ratio']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
