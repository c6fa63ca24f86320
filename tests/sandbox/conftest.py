"""One executor for the sandbox tests (no Flask here: the sandbox stands alone)."""

from __future__ import annotations

from collections.abc import Iterator
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
