"""Syntax trees are built without "AST constructor recursion depth mismatch" when a
collection inside one conversion runs a finalizer that converts, in its own thread (as
Python 3.11's traceback formatting does) or by letting another thread in
(`app.threadsafe_ast`; CPython 3.11 keeps one counter for all of them).

The collisions are made on purpose: a collection comes inside the first `ast.parse` and
frees garbage whose finalizer parses, or lets a second thread parse, before it ends. In
CI it was a pooled connection's finalizer, logging its failed rollback inside an app's
build.
"""

from __future__ import annotations

import ast
import builtins
import gc
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app import threadsafe_ast
from tests.conftest import make_app

# Deep and long enough that the first parse is mid-conversion when the collection runs.
_FIRST = "x = " + "[" * 40 + "1" + "]" * 40 + "\n" + "y = (1, 2)\n" * 3000
_SECOND = "def f(a, b):\n    return [(a, b) for a in b if a]\n" * 50


class _Finalized:
    """Garbage in a cycle (only a collection frees it) that calls `then` when freed."""

    def __init__(self, then: Callable[[], None]) -> None:
        self.then = then
        self.cycle = self

    def __del__(self) -> None:
        self.then()


def _parse(source: str, errors: list[Exception]) -> None:
    """Parse `source`, noting what it raises in `errors`."""
    try:
        ast.parse(source)
    except Exception as exc:
        errors.append(exc)


def _parse_with_garbage(then: Callable[[], None], errors: list[Exception]) -> None:
    """Parse _FIRST with the collector set to run (and free a `_Finalized`) inside it."""
    thresholds = gc.get_threshold()
    gc.collect()
    try:
        _Finalized(then)
        gc.set_threshold(50)
        _parse(_FIRST, errors)
    finally:
        gc.set_threshold(*thresholds)
    gc.collect()  # the finalizer has run by now, inside the parse or after it


def _in_its_own_thread() -> list[Exception]:
    errors: list[Exception] = []

    _parse_with_garbage(lambda: _parse(_SECOND, errors), errors)
    return errors


def _in_another_thread() -> list[Exception]:
    errors: list[Exception] = []
    start, done = threading.Event(), threading.Event()

    def second() -> None:
        start.wait(5)
        _parse(_SECOND, errors)
        done.set()

    def let_it_in() -> None:
        start.set()
        done.wait(0.5)  # with the fix, it waits for the first parse: this times out

    other = threading.Thread(target=second)
    other.start()
    try:
        _parse_with_garbage(let_it_in, errors)
    finally:
        start.set()
        other.join(10)
    assert done.is_set()
    return errors


COLLISIONS = [_in_its_own_thread, _in_another_thread]


@pytest.fixture
def plain_compile() -> Iterator[None]:
    """The interpreter's own `compile` for the test, whatever was installed before."""
    installed = builtins.compile
    builtins.compile = threadsafe_ast._builtin_compile
    yield
    builtins.compile = installed


@pytest.mark.parametrize("collide", COLLISIONS)
def test_an_app_built_makes_conversions_whole(
    collide: Callable[[], list[Exception]], plain_compile: None, tmp_path: Path
) -> None:
    make_app(tmp_path)
    assert builtins.compile is not threadsafe_ast._builtin_compile
    assert collide() == []
    assert gc.isenabled()


@pytest.mark.parametrize("collide", COLLISIONS)
def test_the_collision_is_real_without_it(
    collide: Callable[[], list[Exception]], plain_compile: None
) -> None:
    """The same collision on the interpreter's own `compile` (3.11 fails it): the test
    above would pass for want of a collision otherwise."""
    errors = collide()
    if errors == []:
        pytest.skip("this interpreter keeps the counter per conversion")
    assert "recursion depth mismatch" in str(errors[0]), errors


def test_a_process_forked_mid_conversion_converts_and_collects(plain_compile: None) -> None:
    """A fork while another thread holds the conversions' lock (a Celery pool forking its
    children) left the child a lock nobody would release: its first parse hung."""
    threadsafe_ast.install()
    held, release = threading.Event(), threading.Event()

    def converting() -> None:  # as a conversion in progress: the lock held, collector off
        with threadsafe_ast._lock:
            gc.disable()
            threadsafe_ast._paused = True
            held.set()
            release.wait(10)
            threadsafe_ast._paused = False
            gc.enable()

    other = threading.Thread(target=converting)
    other.start()
    assert held.wait(5)
    pid = os.fork()
    if pid == 0:  # the child: parse, and say whether the collector runs
        ast.parse(_SECOND)
        os._exit(0 if gc.isenabled() else 3)
    release.set()
    other.join(10)
    deadline = time.monotonic() + 20
    while (ended := os.waitpid(pid, os.WNOHANG)) == (0, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    if ended == (0, 0):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert ended != (0, 0), "the child's parse hung on the inherited lock"
    assert os.waitstatus_to_exitcode(ended[1]) == 0, "the child's collector stayed off"
    assert gc.isenabled()
