"""A benchmark's own PostgreSQL database and Redis key prefix, made for it and dropped after.

The servers are the tests' (SCRIPTBOX_TEST_POSTGRES_URL, SCRIPTBOX_TEST_REDIS_URL), so a
benchmark runs wherever the scale-out tests do and leaves nothing behind.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import redis

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Scratch:
    """Where one benchmark keeps its data."""

    database_url: str
    redis_url: str
    prefix: str


def redis_url(default: str = "redis://127.0.0.1:6379/15") -> str:
    """The Redis database the benchmarks may use."""
    return os.environ.get("SCRIPTBOX_TEST_REDIS_URL", default)


@contextmanager
def scratch(kind: str, *, redis_default: str = "redis://127.0.0.1:6379/15") -> Iterator[Scratch]:
    """A fresh database `scriptbox_<kind>_…` and Redis prefix `sb<kind>-…`, dropped after."""
    postgres = os.environ.get("SCRIPTBOX_TEST_POSTGRES_URL", POSTGRES_URL)
    token = secrets.token_hex(4)
    name = f"scriptbox_{kind}_{token}"
    plain = postgres.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    space = Scratch(database_url=postgres.rsplit("/", 1)[0] + f"/{name}",
                    redis_url=redis_url(redis_default), prefix=f"sb{kind}-{token}")
    try:
        yield space
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        client = redis.Redis.from_url(space.redis_url)
        keys = list(client.scan_iter(match=f"{space.prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
