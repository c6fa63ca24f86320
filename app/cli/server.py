"""Operator commands: check the sandbox, migrate, serve, work for the cluster, rotate keys."""

from __future__ import annotations

import json
import sys

import click

from app.cli.apps import load_app, load_current_app, refuse_one_machine_database


@click.command("check-sandbox")
def check_sandbox() -> None:
    """Run a probe script and print which isolation the kernel enforced for it."""
    from sandbox import Executor

    with Executor(idle_workers=1) as executor:
        outcome = executor.run("result = 'ok'")
    click.echo(json.dumps({"status": outcome.status, **outcome.extra}, indent=2))
    sys.exit(0 if outcome.ok else 1)


@click.command("init-db")
def init_db() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    from sqlalchemy.engine import make_url

    from app.migrate import upgrade

    app = load_app()
    migrated = upgrade(app)
    # Printed for the operator and often kept in a deploy log: never the password.
    shown = make_url(app.config["DATABASE_URL"]).render_as_string(hide_password=True)
    click.echo(f"database ready: {shown} ({migrated})")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 for every interface (then set "
                   "SCRIPTBOX_PUBLIC_URL to the URL users open).")
@click.option("--port", default=5000, type=click.IntRange(1, 65535), show_default=True,
              help="Port to listen on.")
@click.option("--demo/--no-demo", default=False, help="Create demo users, facility and provider.")
@click.option("--workers", default=1, type=click.IntRange(min=1), help="Web worker processes.")
@click.option("--threads", default=32, type=click.IntRange(min=2),
              help="Threads per worker; each open page holds one.")
@click.option("--graceful-timeout", default=90, type=click.IntRange(min=0),
              help="Seconds a stopping server (SIGTERM) gives running runs to finish.")
@click.option("--debug", is_flag=True, help="Use the development server instead.")
def serve(
    host: str,
    port: int,
    demo: bool,
    workers: int,
    threads: int,
    graceful_timeout: int,
    debug: bool,
) -> None:
    """Serve Scriptbox (embedded default: SQLite, in-process executor, one process)."""
    from app import extensions, serving
    from app.config import listening_url
    from app.migrate import upgrade

    app = load_app()
    if app.config["EXECUTOR"] == "celery":
        refuse_one_machine_database(app, "scriptbox serve with SCRIPTBOX_EXECUTOR=celery")
        if demo:
            # Its provider lives in this one process: workers and other web processes
            # could not reach it.
            raise click.UsageError(
                "--demo serves the embedded default only (SCRIPTBOX_EXECUTOR=inprocess): the "
                "demo's provider lives in its one process"
            )
    if workers > 1 and app.config["EXECUTOR"] == "inprocess":
        # Runs, their events and grant prompts live in the one process that started them.
        raise click.UsageError(
            "--workers must be 1 with the embedded executor (SCRIPTBOX_EXECUTOR=inprocess): "
            "runs and page events live in one process; raise --threads instead"
        )
    refused = serving.cannot_listen(host, port)
    if refused is not None:
        raise click.ClickException(refused)
    if app.config["PUBLIC_URL_DERIVED"]:
        # Redirect URIs and the websocket's origin check must name where pages are opened.
        app.config["PUBLIC_URL"] = listening_url(host, port)
    public_url = app.config["PUBLIC_URL"]
    migrated = upgrade(app)
    if migrated.upgraded:  # an upgrade's deploy log says which migrations ran
        click.echo(f"database {migrated}")
    if demo:
        from app.demo import install_demo

        for line in install_demo(app):
            click.echo(line)

    def ready() -> None:
        listening = f"http://{host}:{port}"
        where = "" if public_url == listening else f" (listening on {host}:{port})"
        click.echo(f"Scriptbox on {public_url}/{where}", nl=True)
        sys.stdout.flush()

    if debug:
        # Start-up recovery, then the beat (gunicorn workers start theirs after the fork).
        extensions.heartbeat(app).start()
        serving.serve_debug(app, host=host, port=port, on_ready=ready)
        click.echo("stopped")
        return
    serving.serve(
        app,
        host=host,
        port=port,
        workers=workers,
        threads=threads,
        graceful_timeout=graceful_timeout,
        on_ready=ready,
    )


@click.command("worker")
@click.option("--concurrency", type=int, default=None,
              help="Runs at once: forked processes, each with its own sandbox (default: CPUs).")
@click.option("--loglevel", default="INFO", show_default=True,
              help="Celery's log level: DEBUG, INFO, WARNING or ERROR.")
def worker(concurrency: int | None, loglevel: str) -> None:
    """Execute runs sent by the web processes (SCRIPTBOX_EXECUTOR=celery)."""
    import os

    from app import db, extensions

    app = load_app()
    queue = extensions.celery_queue(app)  # refuses any executor but celery
    engine = db.engine_of(app)
    # It would take the cluster's tasks from the shared queue and find none of its runs.
    refuse_one_machine_database(app, "scriptbox worker")
    # Before it takes a task: out of reach, it is one line (as for serve, whose migration
    # meets it first), not a traceback per forked process and then "ready".
    with engine.connect():
        pass
    queue.worker.run(
        concurrency=concurrency or os.cpu_count() or 1,
        hooks=extensions.worker_hooks(app),
        loglevel=loglevel,
    )



@click.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt every stored secret under the newest vault key."""
    from app import extensions
    from app.integrations.vault import VaultError
    from app.services.vault_rotation import rotate_all

    app = load_current_app()
    with app.app_context():
        try:
            count = rotate_all(vault=extensions.vault(app))
        except VaultError as exc:  # says which secrets, and which key must stay
            raise click.ClickException(str(exc)) from None
    click.echo(f"re-encrypted {count} secrets under the newest key")
