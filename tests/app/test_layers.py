"""The package layering holds (import-linter contracts in pyproject.toml) and the run
engine reaches its collaborators by injection, never by a function-local import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
ENGINE = [
    "app/extensions.py",
    "app/lifecycle.py",
    "app/seams.py",
    "app/events.py",
    "app/signals.py",
    "app/runner/driver.py",
    "app/runner/threads.py",
    "app/runner/heartbeat.py",
    "app/services/grants.py",
    "app/services/grant_answers.py",
    "app/services/grant_messages.py",
    "app/integrations/broker.py",
    "app/integrations/availability.py",
    "app/integrations/call_deadline.py",
    "app/integrations/call_urls.py",
]


def test_import_linter_contracts_are_kept() -> None:
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_the_contract_catches_an_upward_import(tmp_path: Path) -> None:
    """A copy of the package where the broker imports the run queue breaks the contract."""
    import shutil

    shutil.copytree(ROOT / "app", tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    broker = tmp_path / "app/integrations/broker.py"
    broker.write_text(broker.read_text() + "\nfrom app.runner import threads  # noqa\n")
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert "app.integrations is not allowed to import app.runner" in result.stdout


def _function_local_app_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(node):
                if (
                    isinstance(inner, ast.ImportFrom)
                    and inner.module
                    and inner.module.split(".")[0] == "app"
                ):
                    found.append(f"{path.name}:{inner.lineno} from {inner.module}")
    return found


def test_the_run_engine_has_no_function_local_imports() -> None:
    offenders = [hit for name in ENGINE for hit in _function_local_app_imports(ROOT / name)]
    assert offenders == []
