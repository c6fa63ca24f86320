"""Benchmark by counts: what one trivial `POST /runs` with `wait` costs around the sandbox.

Wall-clock figures on a shared machine are noise; these counts are not. For `--runs`
runs one after another it counts SQL statements and commits (SQLAlchemy engine events),
Redis commands (a pipeline is one round trip) and threads started, and profiles where
the host's time goes (cProfile, cumulative, top functions of the run engine):

1. embedded: the app on SQLite with the in-process executor, through Flask's test client.
2. celery (`--celery`): the app with `SCRIPTBOX_EXECUTOR=celery` on PostgreSQL and Redis
   (SCRIPTBOX_TEST_POSTGRES_URL, SCRIPTBOX_TEST_REDIS_URL); the Celery message is handed to
   a task body of the queue's worker on a thread in this process (counted as the worker
   side; Celery's own transport, one LPUSH and the worker's fetch, is not in the counts).

The last line is one JSON object: the counts per run, split into web and worker sides,
and `host_cpu_ms`: this process's CPU per run (all its threads, counting included).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask

from app import db
from app.testing import RoundTrips, signed_in_session
from bench.scratch import scratch
from tests.conftest import add_member, create_facility, create_user, make_app

TRIVIAL = "result = 1"


def seed(app: Flask) -> int:
    """A facility `lab` and a scripter in it; the scripter's id."""
    with app.app_context():
        session = db.session()
        facility = create_facility(session, slug="lab")
        user = create_user(session, email="bench@example.com")
        add_member(session, user=user, facility=facility, role="scripter")
        session.commit()
        user_id: int = user.id
    db.session.remove()
    return user_id


def signed_in_client(app: Flask, user_id: int) -> tuple[Any, str]:
    """A test client carrying a signed-in session cookie, and its CSRF token."""
    values = signed_in_session(app, user_id)
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie.update(values)
    return client, values["csrf"]


def post_runs(client: Any, csrf: str, runs: int) -> None:
    """`runs` trivial runs through the REST API, each waited for."""
    for _ in range(runs):
        response = client.post("/api/f/lab/runs", json={"source": TRIVIAL, "wait": 30},
                               headers={"X-CSRF-Token": csrf})
        if response.status_code != 200 or response.json["status"] != "succeeded":
            raise RuntimeError(response.get_data(as_text=True))


def measure(app: Flask, runs: int, worker_threads: set[int] | None = None,
            profile_top: int = 0) -> dict[str, Any]:
    """Counts per run (and, with `profile_top`, the profile) of `runs` POST /runs?wait."""
    client, csrf = signed_in_client(app, seed(app))
    post_runs(client, csrf, 3)  # warm: sandbox workers, pooled connections, caches
    counter = RoundTrips(db.engine_of(app))
    if worker_threads is not None:
        counter.worker_threads = worker_threads
    profiler = cProfile.Profile() if profile_top else None
    before = resource.getrusage(resource.RUSAGE_SELF)
    with counter:
        if profiler is not None:
            profiler.enable()
        post_runs(client, csrf, runs)
        if profiler is not None:
            profiler.disable()
    after = resource.getrusage(resource.RUSAGE_SELF)
    figures: dict[str, Any] = {"per_run": counter.per(runs)}
    # CPU of this process (every thread; not the sandbox's worker processes), counting
    # included: what the host spends on a run around the sandbox.
    cpu_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    figures["per_run"]["host_cpu_ms"] = round(cpu_s * 1000 / runs, 2)
    if profiler is not None:
        out = io.StringIO()
        order = os.environ.get("PROFILE_SORT", "cumulative")  # or tottime
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(profile_top)
        figures["profile"] = out.getvalue()
    figures["statements"] = sorted(set(counter.statements))
    return figures


def embedded(folder: Path, runs: int, profile_top: int) -> dict[str, Any]:
    app = make_app(folder, IDLE_WORKERS=2, MAX_RUNS_PER_USER=100)
    try:
        return measure(app, runs, profile_top=profile_top)
    finally:
        app.extensions["sandbox"].close()


def celery(folder: Path, runs: int) -> dict[str, Any]:
    with scratch("trips", redis_default="redis://127.0.0.1:6379/14") as space:
        app = None
        try:
            app = make_app(folder, DATABASE_URL=space.database_url, EXECUTOR="celery",
                           REDIS_URL=space.redis_url, REDIS_PREFIX=space.prefix,
                           IDLE_WORKERS=2, MAX_RUNS_PER_USER=100)
            queue = app.extensions["run_queue"]
            workers: set[int] = set()

            def deliver(task: str, args: tuple[str], **_: Any) -> None:
                worker = queue.worker
                body = worker.start_here if task == "scriptbox.run" else worker.resume_here

                def work() -> None:
                    workers.add(threading.get_ident())
                    body(*args)

                threading.Thread(target=work, daemon=True).start()

            queue.celery.send_task = deliver
            return measure(app, runs, worker_threads=workers)
        finally:
            if app is not None:
                app.extensions["heartbeat"].stop()
                if "sandbox" in app.extensions:
                    app.extensions["sandbox"].close()
                app.extensions["db_engine"].dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--celery", action="store_true", help="also the Celery path")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="print the top N functions by cumulative time (embedded)")
    parser.add_argument("--statements", action="store_true", help="print the distinct SQL")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="scriptbox-trips-"))
    (folder / "embedded").mkdir()
    (folder / "celery").mkdir()
    figures: dict[str, Any] = {"runs": args.runs}
    found = embedded(folder / "embedded", args.runs, args.profile)
    print("embedded, per run:", found["per_run"])
    if args.profile:
        print(found["profile"])
    if args.statements:
        print("\n".join(found["statements"]))
    figures["embedded"] = found["per_run"]
    if args.celery:
        found = celery(folder / "celery", args.runs)
        print("celery (web + worker), per run:", found["per_run"])
        if args.statements:
            print("\n".join(found["statements"]))
        figures["celery"] = found["per_run"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
