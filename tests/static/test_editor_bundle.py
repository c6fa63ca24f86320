"""The vendored editor bundle (static/vendor/editor.js) works in a real browser.

Drives Debian's Chromium (/usr/bin/chromium) through Playwright. Without that
browser the browser tests are skipped, unless SCRIPTBOX_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "static"
BUNDLE = STATIC / "vendor" / "editor.js"
EDITOR_PKG = STATIC / "editor" / "package.json"
PINNED = [
    "codemirror",
    "@codemirror/lang-python",
    "@codemirror/autocomplete",
    "@codemirror/lint",
    "@codemirror/view",
    "@codemirror/state",
]

TEST_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>editor bundle test</title></head>
<body>
<div id="editor"></div>
<script type="module">
import { createEditor } from "/vendor/editor.js";
window.changes = [];
window.runs = [];
window.saves = [];
window.ed = createEditor(document.getElementById("editor"), {
  doc: "",
  onChange: (text) => window.changes.push(text),
  onRun: (text) => window.runs.push(text),
  onSave: (text) => window.saves.push(text),
  integrations: [{ key: "github", name: "GitHub" }],
});
window.editorReady = true;
</script>
</body></html>
"""


# --------------------------------------------------------------------------- static checks


def test_bundle_is_built_and_self_contained() -> None:
    assert BUNDLE.is_file(), "run: cd static/editor && npm ci && npm run build"
    text = BUNDLE.read_text(encoding="utf-8")
    banner = text.split("*/", 1)[0]
    assert banner.startswith("/*!")
    pkg = json.loads(EDITOR_PKG.read_text(encoding="utf-8"))
    for name in PINNED:
        assert f"{name}@{pkg['dependencies'][name]}" in banner
    assert "export{" in text
    # No static or dynamic import of another module survives bundling.
    assert not re.search(r"(?:^|[;}\n])import\s*[{*\w]", text)
    assert not re.search(r"\bimport\s*\(", text)
    assert not re.search(r"""}from\s*["']""", text)
    licenses = BUNDLE.with_name("editor.js.LICENSES.txt").read_text(encoding="utf-8")
    for name in PINNED:
        assert f"{name}@" in licenses
    assert "MIT" in licenses


def test_editor_package_versions_are_exact() -> None:
    pkg = json.loads(EDITOR_PKG.read_text(encoding="utf-8"))
    deps = {**pkg["dependencies"], **pkg["devDependencies"]}
    for name in [*PINNED, "esbuild"]:
        assert re.fullmatch(r"\d+\.\d+\.\d+", deps[name]), (name, deps[name])
    assert (EDITOR_PKG.parent / "package-lock.json").is_file()


# --------------------------------------------------------------------------- browser


class _QuietHandler(SimpleHTTPRequestHandler):
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
    }

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def static_server() -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(STATIC))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def page(browser, static_server):  # type: ignore[no-untyped-def]
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    requested: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if msg.type == "error" else None,
    )
    page.on("request", lambda req: requested.append(req.url))
    page_url = f"{static_server}/__editor_test__.html"
    page.route(
        page_url,
        lambda route: route.fulfill(status=200, content_type="text/html", body=TEST_PAGE),
    )
    page.goto(page_url)
    page.wait_for_function("window.editorReady === true", timeout=15_000)
    page.requested = requested  # type: ignore[attr-defined]
    yield page
    assert errors == [], errors
    context.close()


_LABELS_JS = (
    "() => [...document.querySelectorAll('.cm-tooltip-autocomplete .cm-completionLabel')]"
    ".map(e => e.textContent)"
)


def _completion_labels(page, expect: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Wait until the open completion list offers `expect`; return all its labels."""
    try:
        page.wait_for_function(f"({_LABELS_JS})().includes({json.dumps(expect)})", timeout=5_000)
    except Exception as exc:
        labels = page.evaluate(_LABELS_JS)
        raise AssertionError(f"{expect!r} not offered; completion list: {labels}") from exc
    return page.evaluate(_LABELS_JS)


@pytest.mark.browser
def test_bundle_loads_without_other_modules(page, static_server) -> None:  # type: ignore[no-untyped-def]
    own = [u for u in page.requested if u.startswith(static_server)]
    assert own == [f"{static_server}/__editor_test__.html", f"{static_server}/vendor/editor.js"]
    assert page.locator(".cm-editor .cm-lineNumbers").count() == 1
    font_size = page.eval_on_selector(".cm-editor", "e => getComputedStyle(e).fontSize")
    assert font_size == "14px"
    height = page.eval_on_selector(".cm-content", "e => e.getBoundingClientRect().height")
    assert height >= 320


@pytest.mark.browser
def test_completes_integrations_members(page) -> None:  # type: ignore[no-untyped-def]
    page.evaluate("window.ed.focus()")
    page.keyboard.type("integrations.")
    labels = _completion_labels(page, "request")
    for name in ["request", "get", "post", "require", "available", "HTTPError", "RateLimited"]:
        assert name in labels, labels
    page.keyboard.type("req")
    # Wait for the list filtered by "req" (no longer offering "available"), then for
    # CodeMirror's interactionDelay (75 ms), during which Enter is not taken as accept.
    page.wait_for_function(
        f"(labels => labels[0] === 'request' && !labels.includes('available'))(({_LABELS_JS})())",
        timeout=5_000,
    )
    page.wait_for_timeout(250)
    page.keyboard.press("Enter")
    assert page.evaluate("window.ed.getValue()") == "integrations.request"


@pytest.mark.browser
def test_completes_service_keys_and_globals(page) -> None:  # type: ignore[no-untyped-def]
    page.evaluate("window.ed.focus()")
    page.keyboard.type('integrations.get("')
    assert _completion_labels(page, "github")
    page.keyboard.press("Escape")

    page.evaluate(
        "window.ed.setIntegrations([{key: 'slack', name: 'Slack'}]); window.ed.setValue('')"
    )
    page.evaluate("window.ed.focus()")
    page.keyboard.type("integrations.request('")
    labels = _completion_labels(page, "slack")
    assert "github" not in labels
    page.keyboard.press("Escape")

    page.evaluate("window.ed.setValue('')")
    page.evaluate("window.ed.focus()")
    page.keyboard.type("faci")
    assert _completion_labels(page, "facility")


@pytest.mark.browser
def test_mark_error_and_clear(page) -> None:  # type: ignore[no-untyped-def]
    page.evaluate("window.ed.setValue('x = 1\\ny = undefined_name\\nprint(y)\\n')")
    page.evaluate("window.ed.markError(2, 'boom')")
    page.wait_for_selector(".cm-lintRange-error", timeout=5_000)
    page.wait_for_selector(".cm-lint-marker-error", timeout=5_000)
    underlined = page.eval_on_selector_all(
        ".cm-lintRange-error", "els => els.map(e => e.textContent).join('')"
    )
    assert underlined == "y = undefined_name"
    page.evaluate("window.ed.clearErrors()")
    page.wait_for_selector(".cm-lintRange-error", state="detached", timeout=5_000)
    assert page.locator(".cm-lint-marker-error").count() == 0


@pytest.mark.browser
def test_value_round_trip_change_and_shortcuts(page) -> None:  # type: ignore[no-untyped-def]
    text = 'import json\n\nresult = {"ok": True, "name": "ü"}\n'
    page.evaluate("t => window.ed.setValue(t)", text)
    assert page.evaluate("window.ed.getValue()") == text
    assert page.evaluate("window.changes") == []  # setValue is not a user change

    page.evaluate("window.ed.focus()")
    page.keyboard.press("Control+End")
    page.keyboard.type("x = 1")
    assert page.evaluate("window.ed.getValue()") == text + "x = 1"
    assert page.evaluate("window.changes.at(-1)") == text + "x = 1"

    page.keyboard.press("Control+Enter")
    assert page.evaluate("window.runs") == [text + "x = 1"]
    page.keyboard.press("Control+s")
    assert page.evaluate("window.saves") == [text + "x = 1"]
    assert page.evaluate("window.ed.getValue()") == text + "x = 1"
