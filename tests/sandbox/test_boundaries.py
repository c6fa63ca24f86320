"""The sandbox package stands alone: standard library and RestrictedPython only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SANDBOX = Path(__file__).resolve().parents[2] / "sandbox"
ALLOWED_THIRD_PARTY = {"RestrictedPython"}
FORBIDDEN = {"app", "flask", "sqlalchemy", "requests"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.partition(".")[0])
    return roots


def test_sandbox_imports_only_the_stdlib_and_restrictedpython() -> None:
    files = sorted(SANDBOX.glob("*.py"))
    assert files
    for path in files:
        roots = imported_roots(path) - {"sandbox", "__future__"}
        outside = roots - set(sys.stdlib_module_names) - ALLOWED_THIRD_PARTY
        assert not outside, f"{path.name} imports {sorted(outside)}"
        assert not roots & FORBIDDEN, f"{path.name} imports {sorted(roots & FORBIDDEN)}"


def test_the_boundary_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import flask\nfrom app.models import User\n")
    assert imported_roots(bad) == {"flask", "app"}


def test_app_uses_the_sandbox_only_through_its_public_names() -> None:
    import sandbox

    app_root = SANDBOX.parent / "app"
    for path in app_root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("sandbox")
            ):
                assert node.module == "sandbox", f"{path}: imports {node.module}"
                for alias in node.names:
                    assert alias.name in sandbox.__all__, f"{path}: {alias.name}"


def _top_level_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in tree.body:  # module level only: imports inside fixtures run on demand
        if isinstance(node, ast.Import):
            roots |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.partition(".")[0])
    return roots


def test_the_sandbox_tests_import_no_flask() -> None:
    tests = Path(__file__).resolve().parent
    for path in [*tests.glob("*.py"), tests.parent / "conftest.py"]:
        assert not _top_level_roots(path) & FORBIDDEN, path.name
