"""The README's screenshots exist and each is taken by a browser test (so it can be refreshed)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import DOCS, readme_shots


def test_every_readme_screenshot_is_committed_and_taken_by_a_test() -> None:
    names = readme_shots()
    assert len(names) >= 10
    sources = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    for name in sorted(names):
        assert (DOCS / f"{name}.png").is_file(), f"docs/screenshots/{name}.png is missing"
        # Named in full, or as an f-string with its width ("runs-scripter-{width}").
        stem = name.rsplit("-", 1)[0] if name.endswith(("-1280", "-375")) else name
        taken = f'"{name}"' in sources or f'"{stem}-{{width}}"' in sources
        assert taken, f"no browser test takes {name}"
