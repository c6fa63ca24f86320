"""The README's screenshots exist and each is taken by a browser test (so it can be refreshed)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.e2e.conftest import DOCS, readme_shots


def test_every_readme_screenshot_is_committed_and_taken_by_a_test() -> None:
    names = readme_shots()
    assert len(names) >= 10
    sources = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    # Names the tests take: string literals, f-strings with their fields as wildcards.
    taken = [
        re.compile(re.sub(r"\\\{[^}]*\\\}", "[a-z0-9]+", re.escape(literal)) + "$")
        for literal in re.findall(r'f?"([a-z0-9{}_.\[\]-]+)"', sources)
    ]
    for name in sorted(names):
        assert (DOCS / f"{name}.png").is_file(), f"docs/screenshots/{name}.png is missing"
        assert any(p.match(name) for p in taken), f"no browser test takes {name}"
