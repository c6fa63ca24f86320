"""The `scriptbox` command: run a script, serve the app, manage users and keys.

The group and its error handling live here; the commands, one module per noun (runs,
server, people), are registered on it below.
"""

from __future__ import annotations

from typing import Any

import click

from app.cli import people, runs, server


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


for _command in (
    runs.run_command,
    runs.cancel,
    server.check_sandbox,
    server.init_db,
    server.serve,
    server.worker,
    server.rotate_keys,
    people.create_user,
    people.create_facility,
    people.add_member,
    people.end_sessions,
):
    main.add_command(_command)
