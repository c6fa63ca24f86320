"""Alembic, driven from code: the schema is created and upgraded only by migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from flask import Flask

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at this package's migrations and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(app: Flask, revision: str = "head") -> None:
    """Bring the app's database to `revision`."""
    config = alembic_config(app.config["DATABASE_URL"])
    # 0004 reports which integrations the operator's private-network list leaves out.
    config.attributes["private_network_allow"] = app.config["PRIVATE_NETWORK_ALLOW"]
    command.upgrade(config, revision)
