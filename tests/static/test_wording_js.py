"""static/js/wording.js answers as app/web/wording.py does: it reads the server's table, and
its one rule that reads a message (restatesCode) gives restates_code's answers."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from app.lifecycle import RunStatus
from app.web.wording import (
    CALL_ERROR_WORDS,
    NOT_RUN,
    account_in_words,
    call_error_in_words,
    for_the_browser,
    restates_code,
    status_in_words,
    status_tone,
)

WORDING_JS = Path(__file__).resolve().parents[2] / "static" / "js" / "wording.js"
# The page's <meta name="run-wording">, as much of `document` as wording.js reads.
_RUN = """
const [table, cases, ACCOUNTS, ERRORS] = process.argv.slice(1).map((text) => JSON.parse(text));
globalThis.document = { querySelector: () => ({ content: JSON.stringify(table) }) };
const js = await import(process.env.WORDING_JS);
console.log(JSON.stringify({
  restates: cases.map(([code, message]) => js.restatesCode(code, message)),
  words: Object.fromEntries(table.final.concat(Object.keys(table.status_words))
    .map((status) => [status, [js.statusWords(status), js.statusTone(status)]])),
  accounts: Object.fromEntries(ACCOUNTS.map((kind) => [kind, js.accountWords(kind)])),
  errors: Object.fromEntries(ERRORS.map((code) => [code, js.callErrorWords(code)])),
}));
"""
# The call log's accounts and errors (a code of a newer server's among them).
ACCOUNTS = ["master", "user", "label:lab notebook", "label:a {label} b", "label:$&"]
ERRORS = [*CALL_ERROR_WORDS, "some_new_code"]
CASES = [
    ("cancelled", "the run was cancelled"),
    ("output_limit", "Output limit reached"),
    ("call_limit", "the script made more than 100 CALL LIMIT calls"),
    ("timeout", "the script ran longer than 5 s"),
    ("script_error", "ValueError: nope"),
    ("script_error", "script error"),
    ("cancelled", None),
    ("cancelled", ""),
    (None, "the run was cancelled"),
]


def test_wording_js_answers_as_the_server_does() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node here to run static/js/wording.js")
    table = for_the_browser("/settings/integrations")
    done = subprocess.run(
        [
            node, "--input-type=module", "-e", _RUN,
            *(json.dumps(each) for each in (table, CASES, ACCOUNTS, ERRORS)),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"WORDING_JS": WORDING_JS.as_uri(), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    assert answers["restates"] == [restates_code(code, message) for code, message in CASES]
    statuses = [str(status) for status in RunStatus] + [NOT_RUN]
    assert answers["words"] == {s: [status_in_words(s), status_tone(s)] for s in statuses}
    assert answers["accounts"] == {k: account_in_words(k, whose="own") for k in ACCOUNTS}
    assert answers["errors"] == {code: call_error_in_words(code) for code in ERRORS}
