"""Commands on runs: `run` (a file or a facility's script, printed as JSON) and `cancel`."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from app.cli.apps import load_current_app


@click.command("run")
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
        app = load_current_app()
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


@click.command("cancel")
@click.argument("run_id")
def cancel(run_id: str) -> None:
    """Cancel run RUN_ID, whatever state it is in (a server driving it stops it)."""
    from app import db, extensions
    from app.errors import NotFound
    from app.models import Run

    app = load_current_app()
    with app.app_context():
        if db.session.get(Run, run_id) is None:
            raise NotFound(f"no run {run_id}")
        cancelling = extensions.run_queue(app).cancel(run_id)
        db.session.expire_all()
        status = db.session.get(Run, run_id).status  # type: ignore[union-attr]
    if not cancelling:
        raise click.ClickException(f"run {run_id} already ended ({status})")
    click.echo(f"run {run_id}: {status if status == 'cancelled' else 'cancelling'}")

