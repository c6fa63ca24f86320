"""How a command gets its app: built from the environment, and for a command that does not
migrate, refused unless its database is at its release's migrations."""

from __future__ import annotations

from typing import Any


def refuse_one_machine_database(app: Any, what: str) -> None:
    """The scale-out's processes share one database: a SQLite file is one machine's."""
    from app import db
    from app.config import ConfigError

    if db.engine_of(app).dialect.name == "sqlite":
        raise ConfigError(f"{what} needs the cluster's PostgreSQL: a SQLite file is one machine's")


def load_app(**overrides: Any) -> Any:
    """The app, configured from the environment (and `overrides`, if any)."""
    from app import create_app

    return create_app(overrides or None) if overrides else create_app()


def load_current_app() -> Any:
    """The app, for a command that does not migrate: refused unless its database is current."""
    from app.migrate import require_current

    app = load_app()
    require_current(app)
    return app
