"""Browser test helpers (the `browser` fixture is in tests/conftest.py)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
DOCS = ROOT / "docs" / "screenshots"


def readme_shots() -> set[str]:
    """The screenshot names the README shows (docs/screenshots/<name>.png)."""
    text = (ROOT / "README.md").read_text()
    return set(re.findall(r"docs/screenshots/([a-z0-9-]+)\.png", text))


def shot(page: object, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/screenshots/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / (re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") + ".png")
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    # SCRIPTBOX_REFRESH_DOCS=1: the README's screenshots are refreshed from this run.
    if os.environ.get("SCRIPTBOX_REFRESH_DOCS") == "1" and path.stem in readme_shots():
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS / path.name)
    return path
