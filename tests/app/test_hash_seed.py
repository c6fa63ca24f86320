"""The sandbox's hash seed is fixed per installation, so a parked run replays set order."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from app import sandboxes
from app.config import ConfigError
from sandbox import Executor
from tests.conftest import make_app


def seed_of(tmp_path: Path, name: str, **overrides: object) -> int:
    folder = tmp_path / name
    folder.mkdir()
    app = make_app(folder, **overrides)
    seed = app.config["HASH_SEED"]
    assert isinstance(seed, int) and 0 <= seed <= 4294967295
    return seed


def test_the_seed_is_derived_from_the_installation_key(tmp_path: Path) -> None:
    # Two processes of one installation (same SECRET_KEY) agree; another installation differs.
    first = seed_of(tmp_path, "a", SECRET_KEY="installation-one")
    assert seed_of(tmp_path, "b", SECRET_KEY="installation-one") == first
    assert seed_of(tmp_path, "c", SECRET_KEY="installation-two") != first


def test_a_configured_seed_wins(tmp_path: Path) -> None:
    assert seed_of(tmp_path, "a", HASH_SEED=77) == 77


@pytest.mark.parametrize("value", [-1, 2**32, "seventy", True, 1.5])
def test_a_seed_out_of_range_refuses_to_start(tmp_path: Path, value: object) -> None:
    with pytest.raises(ConfigError, match="SCRIPTBOX_HASH_SEED"):
        make_app(tmp_path, HASH_SEED=value)


def test_the_executor_starts_its_workers_with_the_seed(app: Flask) -> None:
    executor: Executor = sandboxes.executor(app)
    assert executor.hash_seed == app.config["HASH_SEED"]
    source = "result = list({'w%d' % i for i in range(40)})"
    with Executor(idle_workers=1, hash_seed=app.config["HASH_SEED"]) as other:
        expected = other.run(source).result
    assert executor.run(source).result == expected
