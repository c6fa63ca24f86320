"""`scriptbox serve --demo` says which API key its API-key integration accepts."""

from __future__ import annotations

import re
from pathlib import Path

import requests

from app.demo import install_demo
from app.testing import LiveServer
from tests.conftest import make_app

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_start_up_message_and_readme_name_the_demo_api_key(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    lines = install_demo(app)
    said = [m for line in lines if (m := re.search(r"accepts the API key (\S+)\.$", line))]
    assert len(said) == 1, lines
    key = said[0].group(1)
    assert f"`{key}`" in README.read_text()
    live = LiveServer(app)
    try:
        echo = f"{live.url}/demo-provider/keyapi/echo"
        # The key the message names is the one the demo's provider accepts.
        assert requests.get(echo, headers={"X-API-Key": key}, timeout=30).status_code == 200
        assert requests.get(echo, headers={"X-API-Key": key + "x"}, timeout=30).status_code == 401
    finally:
        live.close()
        executor = app.extensions.get("sandbox")
        if executor is not None:
            executor.close()
