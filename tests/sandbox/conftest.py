"""One executor for the sandbox tests (no Flask here: the sandbox stands alone)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import Executor, Limits, RunResult

QUICK = Limits(wall_time_s=5, cpu_time_s=2, memory_mb=128)


@pytest.fixture(scope="session")
def executor() -> Iterator[Executor]:
    with Executor(idle_workers=4) as pool:
        yield pool


@pytest.fixture
def run(executor: Executor) -> Any:
    """run(source, **kwargs) -> RunResult with quick limits by default."""

    def _run(source: str, **kwargs: Any) -> RunResult:
        kwargs.setdefault("limits", QUICK)
        return executor.run(source, **kwargs)

    return _run


ALONE = Path(__file__).with_name("alone.py")


@pytest.fixture
def run_alone() -> Any:
    """run_alone([job, ...]) -> [{"done", "output", "calls"}, ...]: the policy with no jail.

    One fresh interpreter per call (see alone.py), started with an empty environment.
    """

    def _run(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        finished = subprocess.run(
            [sys.executable, "-I", str(ALONE)],
            input=json.dumps(jobs),
            capture_output=True,
            text=True,
            env={},
            timeout=300,
            check=True,
        )
        results: list[dict[str, Any]] = json.loads(finished.stdout)
        return results

    return _run
