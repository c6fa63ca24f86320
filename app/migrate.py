"""Alembic, driven from code: the schema is created and upgraded only by migrations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from flask import Flask

from app import db
from app.config import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at this package's migrations and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@dataclass(frozen=True)
class Migrated:
    """Where an upgrade took the database: from `before` (None: it had no schema) to `after`."""

    before: str | None
    after: str | None

    def __str__(self) -> str:
        """In an operator's words: "upgraded from 0020 to 0021", "created at 0021", "at 0021"."""
        if self.before == self.after:
            return f"at {self.after}"
        if self.before is None:
            return f"created at {self.after}"
        return f"upgraded from {self.before} to {self.after}"

    @property
    def upgraded(self) -> bool:
        """True when an existing schema was migrated (not created, not left as it was)."""
        return self.before is not None and self.before != self.after


def current_revision(app: Flask) -> str | None:
    """The migration the app's database stands at (None: no schema yet)."""
    with db.engine_of(app).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(app: Flask, revision: str = "head") -> Migrated:
    """Bring the app's database to `revision`; where it was and where it is now."""
    before = current_revision(app)
    config = alembic_config(app.config["DATABASE_URL"])
    # 0004 reports which integrations the operator's private-network list leaves out.
    config.attributes["private_network_allow"] = app.config["PRIVATE_NETWORK_ALLOW"]
    command.upgrade(config, revision)
    return Migrated(before, current_revision(app))


def require_current(app: Flask) -> None:
    """Refuse (ConfigError, in words saying what to run) a database this code cannot use:
    one with no schema, or one behind or ahead of this release's migrations. The commands
    that do not migrate call it first: a missing column came as a traceback mid-command."""
    current = current_revision(app)
    scripts = ScriptDirectory.from_config(alembic_config(app.config["DATABASE_URL"]))
    head = scripts.get_current_head()
    if current == head:
        return
    if current is None:
        raise ConfigError(
            "the database of SCRIPTBOX_DATABASE_URL has no schema yet: run"
            " `scriptbox init-db` to create it"
        )
    try:
        scripts.get_revision(current)
    except CommandError:
        raise ConfigError(
            f"the database of SCRIPTBOX_DATABASE_URL is at migration {current}, which this"
            f" Scriptbox (at {head}) does not know: a newer release migrated it; run that"
            " release"
        ) from None
    raise ConfigError(
        f"the database of SCRIPTBOX_DATABASE_URL is at migration {current} and this"
        f" Scriptbox needs {head}: run `scriptbox init-db` to migrate it (`scriptbox serve`"
        " does too)"
    )
