"""Benchmark: grant prompts end to end, and many paused runs at once.

In one run, against a real Scriptbox served on loopback (SQLite, in-process executor)
and the dev provider's API-key API:
1. prompt latency: from the script's call (it prints time.time() just before calling,
   and the output line reaches the host before the call does) to `grant.required`
   arriving at a websocket client;
2. resume latency: from sending the sign-in form (an API key) to the script's next line
   (it prints time.time() right after the call returns), with the worker still alive;
3. parked resume latency: the same for a run that made 10 journalled calls and parked
   (PARK_AFTER_S=0): sign-in -> replay of the 10 calls -> the script's next line;
4. replay overhead per journalled call (bench/replay.py, with this app's executor);
5. N runs paused at once waiting for one prompt, parked (PARK_AFTER_S=0): the extra
   memory of the server and its worker processes (sum of PSS), and a trivial run's
   latency (POST with wait) meanwhile.
The last line is one JSON object with the named figures.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app, db, extensions, sandboxes
from app.devprovider import ProviderConfig, create_provider_app, serve_in_thread
from app.migrate import upgrade
from app.models import Account, Integration, Role, Run
from app.services import people
from app.testing import LiveServer, WebClient
from bench.replay import replay_overhead_ms_per_call

API_KEY = "bench-key"
TIMED_CALL = """
import time
print("before", time.time())
resp = integrations.get("keyed", "/echo")
print("after", time.time())
result = resp.status
"""
PAUSED = 'integrations.require("paused")\nresult = 1\n'
JOURNALLED_THEN_PROMPT = """
import time
for i in range(10):
    integrations.get("free", "/echo/%d" % i)
print("before", time.time())
resp = integrations.get("keyed", "/echo")
print("after", time.time())
result = resp.status
"""


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def tree_pss_mb(root: int) -> float:
    """PSS of a process and all its descendants, in MiB."""
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
                total += sum(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
            for task in Path(f"/proc/{pid}/task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(child) for child in children)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1024


def setup(keyapi: str, folder: Path) -> tuple[LiveServer, WebClient, int]:
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{folder / 'bench.sqlite'}",
            "SECRET_KEY": "bench",
            "IDLE_WORKERS": 4,
            "GRANT_TIMEOUT_S": 3600,
            "RUN_WALL_TIME_S": 600,
            "PRIVATE_NETWORK_ALLOW": "127.0.0.1/32",  # the bench's API listens on loopback
            "PARK_AFTER_S": 60,  # live pauses first; the parked phases set it to 0
            "MAX_LIVE_PAUSED": 100_000,
            "MAX_RUNS_PER_USER": 100_000,
            "MAX_QUEUED_RUNS_PER_USER": 100_000,
            "MAX_WAITING_REQUESTS_PER_USER": 100_000,
            "MAX_WAITING_REQUESTS": 100_000,
            "MAX_RUNS_PER_FACILITY": 100_000,
            "HEARTBEAT_S": 5,
        }
    )
    app.instance_path = str(folder / "instance")
    upgrade(app)
    live = LiveServer(app)
    with app.app_context():
        session = db.session()
        facility = people.create_facility(session, name="Bench", slug="bench")
        user = people.create_user(
            session, email="bench@example.com", name="Bench", password="bench-password"
        )
        people.set_membership(session, user=user, facility=facility, role=Role.scripter)
        for key in ("keyed", "paused", "free"):
            session.add(
                Integration(
                    facility_id=facility.id,
                    key=key,
                    name=key.title(),
                    auth_mode="none" if key == "free" else "api_key",
                    base_url=keyapi,
                    credential_fields=[] if key == "free" else ["api_key"],
                    placements=[]
                    if key == "free"
                    else [{"location": "header", "name": "X-API-Key", "template": "{api_key}"}],
                )
            )
        session.commit()
        user_id = user.id
    return live, WebClient(app, live.url, user_id), user_id


def measure_prompt_and_resume(
    live: LiveServer, client: WebClient, rounds: int
) -> tuple[list[float], list[float]]:
    page = client.websocket("bench")
    page.wait_for("hello")
    prompts, resumes = [], []
    for _ in range(rounds):
        run = client.api(
            "POST", "/api/f/bench/runs", json={"source": TIMED_CALL, "interactive": True}
        ).json()
        before = page.wait_for("run.output", run_id=run["id"])
        called_at = float(before["data"].split()[1])
        prompt = page.wait_for("grant.required")
        prompts.append((time.time() - called_at) * 1000)
        sent_at = time.time()
        client.post_form(prompt["sign_in_url"], {"api_key": API_KEY})
        after = page.wait_for("run.output", run_id=run["id"])
        resumes.append((float(after["data"].split()[1]) - sent_at) * 1000)
        page.wait_for("run.finished", run_id=run["id"])
        with live.app.app_context():  # forget the account so the next round prompts again
            db.session.query(Account).delete()
            db.session.commit()
    page.close()
    return prompts, resumes


def measure_parked_resume(live: LiveServer, client: WebClient, rounds: int) -> list[float]:
    """Sign-in -> the parked run's next line, after replaying 10 journalled calls."""
    extensions.grants(live.app).park_after_s = 0.0  # park at once (the knob, read per pause)
    page = client.websocket("bench")
    page.wait_for("hello")
    resumes = []
    for _ in range(rounds):
        body = {"source": JOURNALLED_THEN_PROMPT, "interactive": True}
        run = client.api("POST", "/api/f/bench/runs", json=body).json()
        prompt = page.wait_for("grant.required", run_id=run["id"])
        page.wait_for("run.status", run_id=run["id"], status="parked")
        page.wait_for("run.output", run_id=run["id"])  # "before", delivered once
        sent_at = time.time()
        client.post_form(prompt["sign_in_url"], {"api_key": API_KEY})
        after = page.wait_for("run.output", run_id=run["id"])
        resumes.append((float(after["data"].split()[1]) - sent_at) * 1000)
        page.wait_for("run.finished", run_id=run["id"])
        with live.app.app_context():
            db.session.query(Account).delete()
            db.session.commit()
    page.close()
    return resumes


def _paused_count(live: LiveServer) -> int:
    with live.app.app_context():
        count = (
            db.session.query(Run)
            .filter(Run.status.in_(("waiting_for_grant", "parked")))
            .count()
        )
        db.session.remove()
    return count


def _unfinished(live: LiveServer) -> int:
    with live.app.app_context():
        count = (
            db.session.query(Run)
            .filter(Run.status.in_(("queued", "running", "waiting_for_grant", "parked")))
            .count()
        )
        db.session.remove()
    return count


def measure_paused(live: LiveServer, client: WebClient, count: int, probes: int) -> dict[str, Any]:
    import os

    extensions.grants(live.app).park_after_s = 0.0
    page = client.websocket("bench")
    page.wait_for("hello")
    time.sleep(1.0)
    before = tree_pss_mb(os.getpid())
    started = time.perf_counter()
    in_flight = 64  # submit in waves: each run needs a worker until it parks
    submitted = 0
    deadline = time.monotonic() + 3600
    while submitted < count and time.monotonic() < deadline:
        wave = min(in_flight, count - submitted)
        for _ in range(wave):
            client.api("POST", "/api/f/bench/runs", json={"source": PAUSED, "interactive": True})
        submitted += wave
        while _paused_count(live) < submitted - in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
    prompt = page.wait_for("grant.required", timeout=120)
    waiting = 0
    while waiting < count and time.monotonic() < deadline:
        time.sleep(0.5)
        waiting = _paused_count(live)
    pause_s = time.perf_counter() - started
    time.sleep(1.0)
    after = tree_pss_mb(os.getpid())
    latencies = []
    for _ in range(probes):
        t0 = time.perf_counter()
        answer = client.api(
            "POST", "/api/f/bench/runs", json={"source": "result = 1", "wait": 10}
        ).json()
        latencies.append((time.perf_counter() - t0) * 1000)
        assert answer["status"] == "succeeded", answer
    page.send({"type": "grant.refuse", "grant_id": prompt["grant_id"]})
    page.wait_for("grant.resolved", grant_id=prompt["grant_id"])
    while _unfinished(live) and time.monotonic() < deadline:  # the refusal resumes them all
        time.sleep(0.5)
    page.close()
    return {
        "paused_runs": waiting,
        "paused_extra_rss_mb": round(after - before, 1),
        "paused_extra_per_run_mb": round((after - before) / max(count, 1), 4),
        "seconds_to_pause_all": round(pause_s, 2),
        "trivial_run_p50_ms_while_paused": round(statistics.median(latencies), 2),
        "trivial_run_p99_ms_while_paused": round(percentile(latencies, 99), 2),
    }


def main() -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--paused", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument("--parked-rounds", type=int, default=15)
    args = parser.parse_args()
    provider = create_provider_app(ProviderConfig(api_keys={API_KEY: None}))
    with serve_in_thread(provider) as api, tempfile.TemporaryDirectory() as tmp:
        live, client, _ = setup(f"{api.url}/keyapi", Path(tmp))
        try:
            prompts, resumes = measure_prompt_and_resume(live, client, args.rounds)
            parked = measure_parked_resume(live, client, args.parked_rounds)
            overhead = replay_overhead_ms_per_call(sandboxes.executor(live.app))
            paused = measure_paused(live, client, args.paused, args.probes)
        finally:
            live.close()
            executor = live.app.extensions.get("sandbox")
            if executor is not None:
                executor.close()
    figures = {
        "prompt_p50_ms": round(statistics.median(prompts), 2),
        "prompt_p99_ms": round(percentile(prompts, 99), 2),
        "resume_p50_ms": round(statistics.median(resumes), 2),
        "resume_p99_ms": round(percentile(resumes, 99), 2),
        "resume_parked_p50_ms": round(statistics.median(parked), 2),
        "resume_parked_p99_ms": round(percentile(parked, 99), 2),
        "replay_overhead_ms_per_call": overhead,
        **paused,
    }
    print(f"prompt  p50 {figures['prompt_p50_ms']} ms  p99 {figures['prompt_p99_ms']} ms")
    print(f"resume  p50 {figures['resume_p50_ms']} ms  p99 {figures['resume_p99_ms']} ms")
    print(
        f"parked resume (10 journalled calls)  p50 {figures['resume_parked_p50_ms']} ms  "
        f"p99 {figures['resume_parked_p99_ms']} ms; replay "
        f"{figures['replay_overhead_ms_per_call']} ms per journalled call"
    )
    print(
        f"{figures['paused_runs']} paused runs: +{figures['paused_extra_rss_mb']} MiB PSS "
        f"({figures['paused_extra_per_run_mb']} MiB each); trivial run meanwhile "
        f"p50 {figures['trivial_run_p50_ms_while_paused']} ms "
        f"p99 {figures['trivial_run_p99_ms_while_paused']} ms"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
