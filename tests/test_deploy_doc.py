"""docs/deploy.md names every setting the app reads (its table is the operator's list)."""

from __future__ import annotations

import re
from pathlib import Path

from app.config import DEFAULTS

DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "deploy.md"


def test_every_setting_is_in_the_deploy_guide() -> None:
    text = DEPLOY.read_text()
    missing = [key for key in DEFAULTS if not re.search(rf"`{key}`", text)]
    assert not missing, f"add these SCRIPTBOX_ settings to docs/deploy.md: {missing}"
