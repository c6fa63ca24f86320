"""The `scriptbox` command: run a script, serve the app, manage users and keys."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click


def _refuse_one_machine_database(app: Any, what: str) -> None:
    """The scale-out's processes share one database: a SQLite file is one machine's."""
    from app import db
    from app.config import ConfigError

    if db.engine_of(app).dialect.name == "sqlite":
        raise ConfigError(f"{what} needs the cluster's PostgreSQL: a SQLite file is one machine's")


def _app(**overrides: Any) -> Any:
    from app import create_app

    return create_app(overrides or None) if overrides else create_app()


def _current_app() -> Any:
    """The app, for a command that does not migrate: refused unless its database is current."""
    from app.migrate import require_current

    app = _app()
    require_current(app)
    return app


class _Group(click.Group):
    """Shows what an operator must fix as one clear line, not a traceback: an AppError
    (unknown user, duplicate slug…), a setting that cannot work, a database out of reach."""

    def invoke(self, ctx: click.Context) -> Any:
        from sqlalchemy.exc import OperationalError

        from app.config import ConfigError
        from app.errors import AppError

        try:
            return super().invoke(ctx)
        except AppError as exc:
            raise click.ClickException(exc.message) from None
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        except OperationalError as exc:
            # The driver's message says why (no such role or database, refused…).
            lines = str(exc.orig or exc).strip().splitlines()
            reason = "; ".join(line.strip() for line in lines if line.strip())
            raise click.ClickException(
                f"cannot use the database of SCRIPTBOX_DATABASE_URL: {reason}"
            ) from None


@click.group(cls=_Group)
def main() -> None:
    """Scriptbox: run user scripts that call third-party APIs, safely."""


@main.command("run")
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--input", "input_json", default="null", help="The run's input, as JSON.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Wall-time limit in seconds.")
@click.option("--memory", type=click.IntRange(min=1), default=None, help="Memory limit in MB.")
@click.option("--facility", default=None, help="Facility slug: call its real integrations.")
@click.option("--user", "user_email", default=None, help="Run as this user (with --facility).")
@click.option(
    "--script",
    "script_id",
    type=int,
    default=None,
    help="Run the facility's saved script with this id instead of FILE (with --facility).",
)
def run_command(
    file: Path | None,
    input_json: str,
    timeout: float | None,
    memory: int | None,
    facility: str | None,
    user_email: str | None,
    script_id: int | None,
) -> None:
    """Run FILE (or --script ID of a facility) in the sandbox; print the run as one JSON object.

    Scripters may run any file; members run the facility's published scripts by id.
    """
    from app.errors import strict_loads
    from sandbox import Executor, Limits

    try:
        run_input = strict_loads(input_json)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--input") from None
    if file is None and script_id is None:
        raise click.UsageError("give a FILE to run or --script ID")
    if file is not None and script_id is not None:
        raise click.UsageError("give a FILE to run or --script ID, not both")
    if script_id is not None and not facility:
        raise click.UsageError("--script needs --facility: scripts belong to a facility")
    if user_email is not None and not facility:
        # Without a facility the file runs sandbox-only: the user would be silently ignored.
        raise click.UsageError("--user needs --facility: a user runs as a member of one")
    limits = Limits().with_overrides(wall_time_s=timeout, memory_mb=memory)
    source = file.read_text(encoding="utf-8") if file is not None else None
    if facility:
        from app import extensions
        from app.services.cli_runs import run_with_integrations

        overrides = {"RUN_WALL_TIME_S": timeout, "RUN_MEMORY_MB": memory}
        app = _current_app()
        app.config.update({k: v for k, v in overrides.items() if v is not None})
        with _ctrl_c_cancels(extensions.heartbeat(app)):
            outcome = run_with_integrations(
                app,
                run_input,
                facility,
                user_email,
                source=source,
                script_id=script_id,
                drive=extensions.driver(app).claim_and_drive,
            )
    else:
        assert source is not None  # checked above: without --facility there is a FILE
        with Executor(idle_workers=1) as executor:
            outcome = executor.run(source, input=run_input, limits=limits)
    click.echo(json.dumps(outcome.to_dict(), indent=2))
    sys.exit(0 if outcome.ok else 1)


@contextlib.contextmanager
def _ctrl_c_cancels(heartbeat: Any) -> Iterator[None]:
    """While inside: Ctrl-C cancels the run this command drives, which then ends `cancelled`
    and is printed as any other; a second Ctrl-C, or one before the run started, quits."""
    import signal

    def cancel(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, previous)  # the next Ctrl-C quits at once
        driven = heartbeat.local_runs()
        if not driven:
            raise KeyboardInterrupt
        click.echo("cancelling the run (Ctrl-C again to quit at once)", err=True)
        for run_id in driven:
            heartbeat.cancel_local(run_id)

    previous = signal.signal(signal.SIGINT, cancel)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@main.command("cancel")
@click.argument("run_id")
def cancel(run_id: str) -> None:
    """Cancel run RUN_ID, whatever state it is in (a server driving it stops it)."""
    from app import db, extensions
    from app.errors import NotFound
    from app.models import Run

    app = _current_app()
    with app.app_context():
        if db.session.get(Run, run_id) is None:
            raise NotFound(f"no run {run_id}")
        cancelling = extensions.run_queue(app).cancel(run_id)
        db.session.expire_all()
        status = db.session.get(Run, run_id).status  # type: ignore[union-attr]
    if not cancelling:
        raise click.ClickException(f"run {run_id} already ended ({status})")
    click.echo(f"run {run_id}: {status if status == 'cancelled' else 'cancelling'}")


@main.command("check-sandbox")
def check_sandbox() -> None:
    """Run a probe script and print which isolation the kernel enforced for it."""
    from sandbox import Executor

    with Executor(idle_workers=1) as executor:
        outcome = executor.run("result = 'ok'")
    click.echo(json.dumps({"status": outcome.status, **outcome.extra}, indent=2))
    sys.exit(0 if outcome.ok else 1)


@main.command("init-db")
def init_db() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    from sqlalchemy.engine import make_url

    from app.migrate import upgrade

    app = _app()
    migrated = upgrade(app)
    # Printed for the operator and often kept in a deploy log: never the password.
    shown = make_url(app.config["DATABASE_URL"]).render_as_string(hide_password=True)
    click.echo(f"database ready: {shown} ({migrated})")


@main.command("serve")
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

    app = _app()
    if app.config["EXECUTOR"] == "celery":
        _refuse_one_machine_database(app, "scriptbox serve with SCRIPTBOX_EXECUTOR=celery")
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


@main.command("worker")
@click.option("--concurrency", type=int, default=None,
              help="Runs at once: forked processes, each with its own sandbox (default: CPUs).")
@click.option("--loglevel", default="INFO", show_default=True,
              help="Celery's log level: DEBUG, INFO, WARNING or ERROR.")
def worker(concurrency: int | None, loglevel: str) -> None:
    """Execute runs sent by the web processes (SCRIPTBOX_EXECUTOR=celery)."""
    import os

    from app import db, extensions

    app = _app()
    queue = extensions.celery_queue(app)  # refuses any executor but celery
    engine = db.engine_of(app)
    # It would take the cluster's tasks from the shared queue and find none of its runs.
    _refuse_one_machine_database(app, "scriptbox worker")
    # Before it takes a task: out of reach, it is one line (as for serve, whose migration
    # meets it first), not a traceback per forked process and then "ready".
    with engine.connect():
        pass
    queue.worker.run(
        concurrency=concurrency or os.cpu_count() or 1,
        hooks=extensions.worker_hooks(app),
        loglevel=loglevel,
    )


@main.command("create-user")
@click.option("--email", required=True)
@click.option("--name", default="")
@click.password_option(help="At least 8 characters.")
def create_user(email: str, name: str, password: str) -> None:
    """Create a Scriptbox user."""
    from app import db
    from app.services import people

    with _current_app().app_context():
        user = people.create_user(db.session(), email=email, name=name, password=password)
        db.session.commit()
        click.echo(f"created user {user.email}")


@main.command("create-facility")
@click.option("--slug", required=True, help="Short name used in URLs, e.g. lab.")
@click.option("--name", default="")
def create_facility(slug: str, name: str) -> None:
    """Create a facility (tenant)."""
    from app import db
    from app.services import people

    with _current_app().app_context():
        facility = people.create_facility(db.session(), name=name or slug, slug=slug)
        db.session.commit()
        click.echo(f"created facility {facility.slug}")


@main.command("add-member")
@click.option("--facility", "slug", required=True)
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(["member", "scripter", "admin"]), default="member",
              show_default=True)
def add_member(slug: str, email: str, role: str) -> None:
    """Add a user to a facility with a role (or change their role)."""
    from app import db
    from app.services import people

    with _current_app().app_context():
        user = people.user_by_email(db.session(), email)
        facility = people.facility_by_slug(db.session(), slug)
        people.set_membership(db.session(), user=user, facility=facility, role=role)
        db.session.commit()
        click.echo(f"{user.email} is now {role} in {facility.slug}")


@main.command("end-sessions")
@click.option("--email", required=True)
def end_sessions(email: str) -> None:
    """Sign a user out everywhere: every browser session ends, open pages close, and every
    API token of theirs is revoked."""
    from app import db
    from app.services import people, sessions

    with _current_app().app_context():
        user = people.user_by_email(db.session(), email)
        ended = sessions.end_sessions(db.session(), user_id=user.id)
        revoked = sessions.revoke_api_tokens(db.session(), user_id=user.id)
        db.session.commit()
        click.echo(
            f"ended {_count(ended, 'session')} and revoked {_count(revoked, 'API token')} "
            f"of {user.email}"
        )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


@main.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt every stored secret under the newest vault key."""
    from app import extensions
    from app.integrations.vault import VaultError
    from app.services.vault_rotation import rotate_all

    app = _current_app()
    with app.app_context():
        try:
            count = rotate_all(vault=extensions.vault(app))
        except VaultError as exc:  # says which secrets, and which key must stay
            raise click.ClickException(str(exc)) from None
    click.echo(f"re-encrypted {count} secrets under the newest key")
