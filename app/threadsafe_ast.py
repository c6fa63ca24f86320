"""Syntax trees are built one at a time in the host, with no collection midway (a CPython
3.11 workaround).

CPython 3.11 keeps the depth counter of its AST conversions (`ast.parse`, and `compile` of
an `ast` tree) in one place per interpreter (python/cpython#106905). A garbage collection
inside a conversion runs finalizers; when one of them converts too, or lets another
thread in that does, the first conversion fails with "SystemError: AST constructor
recursion depth mismatch". Both happen in a host: Werkzeug parses and compiles a tree for
every route of every app it builds, Pydantic parses signatures when it first meets a
model, and Python 3.11 parses source lines to underline them in every traceback it
formats. CI met it building an app: a pooled connection's finalizer failed its rollback
and logged the traceback, inside Werkzeug's parse.

`install()` wraps the built-in `compile` so that the conversions (and only they: compiling
source text to code builds no tree objects) hold one lock with the collector paused. The
cost is a check per `compile` call, so it is kept on interpreters that may not need it.
A child forked meanwhile gets a lock of its own and its collector back. The script
sandbox compiles in workers of its own zygote (a fresh interpreter) and needs none of this.
"""

from __future__ import annotations

import ast
import builtins
import gc
import os
import threading
from typing import Any

_lock = threading.RLock()
_builtin_compile = builtins.compile
_paused = False  # the collector is off for a conversion in progress


def _after_fork_in_child() -> None:
    """A process forked during another thread's conversion (a Celery pool's child) would
    inherit the lock held by a thread it does not have, and the collector off for good."""
    global _lock, _paused
    _lock = threading.RLock()
    if _paused:
        gc.enable()
        _paused = False


os.register_at_fork(after_in_child=_after_fork_in_child)


def install() -> None:
    """Make tree conversions in this process take turns (once; later calls do nothing)."""
    if builtins.compile is _builtin_compile:
        builtins.compile = _compile


def _compile(
    source: Any, filename: Any, mode: str, flags: int = 0, *args: Any, **kwargs: Any
) -> Any:
    if not (isinstance(source, ast.AST) or flags & ast.PyCF_ONLY_AST):
        return _builtin_compile(source, filename, mode, flags, *args, **kwargs)
    global _paused
    with _lock:
        collecting = gc.isenabled()
        gc.disable()  # no finalizer runs inside the conversion
        _paused = _paused or collecting
        try:
            return _builtin_compile(source, filename, mode, flags, *args, **kwargs)
        finally:
            if collecting:
                _paused = False
                gc.enable()
