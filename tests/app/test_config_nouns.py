"""app/config is one module per noun, each with its settings' DEFAULTS; app.config merges
them into one DEFAULTS, where a setting two modules declared would silently take the later
one's default. Each setting has one owner (STYLE §16): these tests fail when it has two."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

import app.config
from app.config import DEFAULTS


def _nouns() -> list[ModuleType]:
    """The modules of app/config that declare DEFAULTS."""
    found = (
        importlib.import_module(f"app.config.{info.name}")
        for info in pkgutil.iter_modules(app.config.__path__)
    )
    return [module for module in found if hasattr(module, "DEFAULTS")]


def _declared(module: ModuleType) -> list[str]:
    """The keys written in the module's `DEFAULTS = {...}`, repeats included (a dict keeps
    only the last of a key written twice)."""
    tree = ast.parse(Path(str(module.__file__)).read_text())
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "DEFAULTS":
            assert isinstance(node.value, ast.Dict), f"{module.__name__}.DEFAULTS: not a literal"
            keys = [key.value for key in node.value.keys if isinstance(key, ast.Constant)]
            assert len(keys) == len(node.value.keys), f"{module.__name__}: a key not written out"
            return [str(key) for key in keys]
    raise AssertionError(f"{module.__name__} has no DEFAULTS assignment")


def test_no_two_config_modules_declare_the_same_setting() -> None:
    owners: dict[str, list[str]] = {}
    for module in _nouns():
        for key in _declared(module):
            owners.setdefault(key, []).append(module.__name__.rsplit(".", 1)[-1])
    twice = {key: names for key, names in owners.items() if len(names) > 1}
    assert twice == {}


def test_every_config_modules_defaults_are_merged_once() -> None:
    # A noun left out of app.config's list would have its settings missing, not refused.
    declared = sorted(key for module in _nouns() for key in module.DEFAULTS)
    assert declared == sorted(DEFAULTS)
