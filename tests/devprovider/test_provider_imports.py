"""app.devprovider stays self-contained: it imports nothing else from `app`."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "app" / "devprovider"


def imported_modules(source: str) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_devprovider_imports_nothing_else_from_app(path):
    outside = [
        name
        for name in imported_modules(path.read_text())
        if name == "app" or (name.startswith("app.") and not name.startswith("app.devprovider"))
    ]

    assert outside == []


def test_the_check_sees_absolute_app_imports():
    assert imported_modules("import app.models\nfrom app import db\nfrom . import x") == [
        "app.models",
        "app",
    ]
