"""`scriptbox serve --demo` gives a newcomer the whole flow offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.demo import DEMO_PASSWORD, install_demo
from app.testing import LiveServer
from tests.conftest import make_app
from tests.e2e.conftest import shot

pytestmark = pytest.mark.browser


def test_the_demo_member_signs_in_at_the_demo_provider(browser: Any, tmp_path: Path) -> None:
    # No private network allowed by the operator: the demo allows its own address itself.
    app = make_app(tmp_path, PRIVATE_NETWORK_ALLOW="")
    live = LiveServer(app)
    try:
        lines = install_demo(app)
        assert any("member@example.com" in line for line in lines)
        install_demo(app)  # idempotent
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{live.url}/login")
        page.fill("input[name=email]", "member@example.com")
        page.fill("input[name=password]", DEMO_PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_url("**/f/demo/scripts")
        card = page.locator(".script-card", has_text="Who am I at the demo provider")
        card.locator(".run-script").click()
        prompt = page.locator(".grant-prompt")
        prompt.wait_for(timeout=20000)
        with page.expect_popup() as popup_info:
            prompt.locator(".grant-sign-in").click()
        popup = popup_info.value
        popup.wait_for_selector("#approve", timeout=20000)
        popup.click("#approve")
        result = card.locator(".run-result")
        result.wait_for(state="visible", timeout=20000)
        assert json.loads(result.inner_text())["username"] == "alice"
        shot(page, "demo-member-run")
    finally:
        live.close()
        executor = app.extensions.get("sandbox")
        if executor is not None:
            executor.close()
