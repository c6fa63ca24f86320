"""Checking a script's source (does it compile, which integrations it calls): done by the
checker the factory injects, which compiles in a sandbox worker, never in this process."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from flask import current_app

from app.errors import ValidationError
from sandbox import CHECK_TIMED_OUT, ScriptError, SourceCheck, source_size_error

Checker = Callable[[str], SourceCheck]


def check_source(source: str) -> SourceCheck:
    """The app's checker's answer for source (app.runner.checks: a sandbox worker)."""
    checker: Checker = current_app.extensions["source_checker"]
    return checker(source)


def refuse_if_too_slow(found: SourceCheck) -> None:
    """Raise a ValidationError (field `source`) in words when the check ran out of time."""
    if found.error is not None and found.error.code == CHECK_TIMED_OUT:
        raise ValidationError(found.error.message, field="source")


def refuse_as_not_compiling(problem: ScriptError, *, what: str, then: str) -> None:
    """Raise a ValidationError (field `source`, its line): "<what> does not compile (line N:
    why): <then>", where `then` says what follows from it or what to do."""
    where = f"line {problem.line}: " if problem.line else ""
    raise ValidationError(
        f"{what} does not compile ({where}{problem.message}): {then}",
        field="source",
        line=problem.line,
    )


def may_call_integrations(source: str) -> bool:
    """False when source cannot name an integration call (no `integrations` in it, or it is
    too large to compile), so no worker need read it. Identifiers are NFKC-normalized, so
    the source is too: a name written in full-width letters is the same name."""
    if source_size_error(source) is not None:
        return False
    return "integrations" in unicodedata.normalize("NFKC", source)
