"""Benchmark: a trivial run through the REST API, under gunicorn vs. the development server.

Starts `scriptbox serve --demo` twice as a real process on a loopback port, once as
production serves it (gunicorn, gthread) and once with `--debug` (Werkzeug's threaded
development server, what `serve` used before), signs in as the demo scripter and times
`POST /api/f/demo/runs` with `{"source": "result = 1", "wait": 30}`: the whole path of
a run through HTTP, the database, the run thread and a sandbox worker, one at a time.
The last line is one JSON object with the named figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet

SCRIPTBOX = Path(sys.executable).with_name("scriptbox")
PASSWORD = "scriptbox-demo"


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start(folder: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """A `scriptbox serve --demo` process and its URL, once it says it is ready."""
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SCRIPTBOX_DATABASE_URL": f"sqlite:///{folder / 'scriptbox.sqlite'}",
        "SCRIPTBOX_SECRET_KEY": "bench-session-key",
        "SCRIPTBOX_SECRET_KEYS": Fernet.generate_key().decode(),
        "SCRIPTBOX_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    process = subprocess.Popen(
        [str(SCRIPTBOX), "serve", "--demo", "--port", str(port), *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("Scriptbox on "):
            break
    else:
        raise RuntimeError("the server did not start")
    return process, f"http://127.0.0.1:{port}"


def sign_in(url: str) -> tuple[requests.Session, str]:
    """The demo scripter's session and CSRF token."""
    http = requests.Session()
    token = re.compile(r'name="csrf-token" content="([^"]+)"')
    found = token.search(http.get(f"{url}/login", timeout=30).text)
    assert found is not None
    form = {"email": "scripter@example.com", "password": PASSWORD, "csrf_token": found.group(1)}
    http.post(f"{url}/login", data=form, timeout=30)
    found = token.search(http.get(f"{url}/f/demo/scripts", timeout=30).text)
    assert found is not None
    return http, found.group(1)


def measure(args: tuple[str, ...], runs: int, warmup: int) -> dict[str, float]:
    """p50/p99/mean milliseconds of a trivial run with wait, against one server."""
    with tempfile.TemporaryDirectory(prefix="scriptbox-bench-") as folder:
        process, url = start(Path(folder), *args)
        try:
            http, csrf = sign_in(url)
            samples = []
            for i in range(warmup + runs):
                started = time.perf_counter()
                answer = http.post(
                    f"{url}/api/f/demo/runs",
                    json={"source": "result = 1", "wait": 30},
                    headers={"X-CSRF-Token": csrf},
                    timeout=60,
                )
                elapsed = (time.perf_counter() - started) * 1000
                assert answer.json()["status"] == "succeeded", answer.text
                if i >= warmup:
                    samples.append(elapsed)
            http.close()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)
            assert process.stdout is not None
            process.stdout.close()
    return {
        "p50_ms": round(percentile(samples, 50), 2),
        "p99_ms": round(percentile(samples, 99), 2),
        "mean_ms": round(statistics.fmean(samples), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    options = parser.parse_args()
    figures: dict[str, Any] = {"runs": options.runs}
    figures["gunicorn"] = measure((), options.runs, options.warmup)
    print("gunicorn (scriptbox serve):", figures["gunicorn"], flush=True)
    figures["werkzeug"] = measure(("--debug",), options.runs, options.warmup)
    print("werkzeug (scriptbox serve --debug):", figures["werkzeug"], flush=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
