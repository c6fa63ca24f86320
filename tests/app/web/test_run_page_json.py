"""A run's page shows its input and result as a person reads them: characters as they are,
not the \\u escapes JSON for a script tag needs."""

from __future__ import annotations

import html
import json
import re

from flask import Flask

from app.web import shown_json
from tests.app.web.test_run_wording_page import admins_run

# A name with an accent, markup and an emoji (outside the Basic Multilingual Plane).
WHO = "Zo\N{LATIN SMALL LETTER E WITH DIAERESIS} <b>&</b> \N{ROCKET}"


def _shown(page: str, node_id: str) -> str:
    found = re.search(rf'<pre class="mono" id="{node_id}">([^<]*)</pre>', page)
    assert found is not None, node_id
    return found.group(1)


def test_a_runs_input_and_result_show_their_characters_as_they_are(app: Flask) -> None:
    """The page showed "Zo\\u00eb \\u003cb\\u003e... \\ud83d\\ude80" for the input the member
    typed and the result the script returned."""
    admin, run = admins_run(app, status="succeeded", input={"who": WHO, "n": 3},
                            result={"greeting": f"Hello {WHO}"})
    page = admin.get(f"/f/lab/runs/{run.id}").text
    shown_input, shown_result = _shown(page, "run-input"), _shown(page, "run-result")
    assert "\\u" not in shown_input + shown_result
    assert "<b>" not in shown_input + shown_result  # escaped for HTML, not for JSON
    assert html.unescape(shown_input) == json.dumps({"n": 3, "who": WHO}, indent=2,
                                                    ensure_ascii=False)
    assert json.loads(html.unescape(shown_result)) == {"greeting": f"Hello {WHO}"}
    assert WHO in html.unescape(shown_result)


def test_a_lone_surrogate_stays_an_escape() -> None:
    """UTF-8 cannot carry half of a surrogate pair: the page would fail to encode."""
    shown = shown_json({"half": "\ud800"})
    assert shown.encode("utf-8").decode("utf-8") == '{\n  "half": "\\ud800"\n}'
