"""Database settings: which database, its connection pool, and how long finished rows stay."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from app.config.rules import ConfigError, require_positive

DEFAULTS: dict[str, Any] = {
    # Database URL; the embedded default is a SQLite file in the instance folder.
    "DATABASE_URL": None,
    # Days a finished run (with its output, prompts and idempotency key) and a finished
    # webhook delivery are kept; older ones are deleted in the background. 0 keeps them.
    "RETENTION_DAYS": 90,
    # Database connections each process may hold (PostgreSQL; SQLite ignores them).
    "DATABASE_POOL_SIZE": 5,
    "DATABASE_MAX_OVERFLOW": 10,
}

# The databases Scriptbox runs on, as SQLAlchemy's (backend, driver): only these drivers are
# installed, and the migrations are written for these two databases.
DATABASES = frozenset({("sqlite", "pysqlite"), ("postgresql", "psycopg")})


def check_database_url(url: str) -> None:
    """Refuse a database URL Scriptbox cannot use (mysql:// was a driver's import traceback)."""
    got = ""  # the scheme only, never the password
    try:
        parsed = make_url(url)
        got = f" (not {parsed.drivername})"
        kind = (parsed.get_backend_name(), parsed.get_driver_name())
    except (ArgumentError, NoSuchModuleError):
        kind = None
    if kind not in DATABASES:
        raise ConfigError(
            f"SCRIPTBOX_DATABASE_URL must name SQLite or PostgreSQL{got}: "
            "sqlite:///path or postgresql+psycopg://user:password@host:port/db"
        )


def validate(config: Any) -> None:
    """Refuse database settings that cannot work."""
    check_database_url(str(config["DATABASE_URL"]))
    require_positive(config, ("DATABASE_POOL_SIZE",))
    days = config["RETENTION_DAYS"]
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 36500:
        raise ConfigError(
            "SCRIPTBOX_RETENTION_DAYS must be a whole number of days (0 keeps everything)"
        )
