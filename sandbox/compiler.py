"""Compile a script with RestrictedPython; every failure comes back as a ScriptError."""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from types import CodeType

from RestrictedPython.compile import compile_restricted_exec

from sandbox.limits import ScriptError, source_size_error

FILENAME = "<script>"
_LINE = re.compile(r"^Line (\d+): ")


def compile_script(source: str) -> CodeType | ScriptError:
    """Return the restricted code object, or a `compile_error`/`forbidden` ScriptError."""
    tree = parse_script(source)
    if isinstance(tree, ScriptError):
        return tree
    return compile_tree(tree)


def parse_script(source: str) -> ast.Module | ScriptError:
    """The source's syntax tree, or a `compile_error` ScriptError (too large, bad syntax)."""
    too_large = source_size_error(source)
    if too_large is not None:
        return ScriptError("compile_error", too_large)
    try:
        return ast.parse(source, FILENAME, "exec")
    except SyntaxError as exc:
        return ScriptError("compile_error", f"SyntaxError: {exc.msg}", exc.lineno)
    except (RecursionError, MemoryError):
        # Deeply nested expressions exhaust the parser before it can say SyntaxError.
        return ScriptError("compile_error", "the script is nested too deeply to compile")
    except (ValueError, OverflowError) as exc:  # e.g. NUL bytes in the source
        return ScriptError("compile_error", str(exc))


def compile_tree(tree: ast.Module) -> CodeType | ScriptError:
    """Compile a parsed script under the policy (RestrictedPython rewrites `tree` in place)."""
    try:
        result = compile_restricted_exec(tree, FILENAME)
    except (RecursionError, MemoryError):
        return ScriptError("compile_error", "the script is nested too deeply to compile")
    except Exception as exc:  # RestrictedPython may raise on exotic trees
        return ScriptError("compile_error", f"{type(exc).__name__}: {exc}")
    if result.errors:
        return _policy_error(result.errors)
    if result.code is None:
        return ScriptError("compile_error", "the script could not be compiled")
    return result.code


def _policy_error(errors: Sequence[str]) -> ScriptError:
    first = errors[0]
    match = _LINE.match(first)
    line = int(match.group(1)) if match else None
    message = _LINE.sub("", first)
    if len(errors) > 1:
        # Where the others are, so one run finds them all ("and 1 more" sent people
        # hunting, or running again for each).
        lines = sorted({int(m.group(1)) for e in errors[1:] if (m := _LINE.match(e))})
        where = ""
        if lines == [line]:
            where = " on the same line"
        elif lines:
            where = f": line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))}"
        message += f" (and {len(errors) - 1} more{where})"
    return ScriptError("forbidden", message, line)
