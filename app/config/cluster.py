"""Scale-out settings: where runs execute, and the Redis the cluster's processes share."""

from __future__ import annotations

from typing import Any

from app.config.rules import ConfigError

DEFAULTS: dict[str, Any] = {
    # Where runs execute: "inprocess" (threads of the web process, the embedded default) or
    # "celery" (Celery workers; needs REDIS_URL, which also carries events and grant signals).
    "EXECUTOR": "inprocess",
    # Redis for scale-out (Celery broker, event bus, grant signals), e.g. redis://host:6379/0.
    "REDIS_URL": None,
    # Key prefix of everything Scriptbox keeps in Redis (several installations, one Redis).
    "REDIS_PREFIX": "scriptbox",
}

EXECUTORS = ("inprocess", "celery")


def validate(config: Any) -> None:
    """Refuse an unknown executor, and Celery without a Redis URL."""
    if config["EXECUTOR"] not in EXECUTORS:
        raise ConfigError("SCRIPTBOX_EXECUTOR must be one of " + ", ".join(EXECUTORS))
    if config["EXECUTOR"] == "celery" and not str(config["REDIS_URL"] or "").startswith(
        ("redis://", "rediss://", "unix://")
    ):
        raise ConfigError("SCRIPTBOX_EXECUTOR=celery needs SCRIPTBOX_REDIS_URL=redis://host:port/db")
