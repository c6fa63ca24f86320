"""The README's "Embedding Scriptbox" walk-through, call by call, against a served app with
the demo data: token → webhook endpoint → connect link → the user signs in at the demo
provider in a browser without a Scriptbox session → POST /runs with wait → the signed
run.finished webhook arrives at a loopback listener."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from sqlalchemy import select

from app import db
from app.demo import install_demo
from app.devprovider import answer_consent
from app.models import Script, User
from app.services import webhooks
from app.testing import LiveServer, WebClient
from tests.conftest import open_connect_link
from tests.listener import Listener

APP = "https://app.example.com"
README = Path(__file__).resolve().parents[3] / "README.md"


def test_the_readme_walkthrough(live: LiveServer) -> None:
    install_demo(live.app)
    live.app.config["ALLOWED_RETURN_ORIGINS"] = [APP]
    with live.app.app_context():
        admin = db.session.scalar(select(User.id).where(User.email == "admin@example.com"))
        script = db.session.scalar(
            select(Script.id).where(Script.name == "Who am I at the demo provider")
        )
        db.session.remove()
    assert admin is not None and script is not None
    # 1. A token (made from a signed-in session, as Settings does).
    token = WebClient(live.app, live.url, admin).api("POST", "/api/tokens").json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    sb = live.url
    hooks = Listener().start()
    try:
        # 2. The webhook endpoint; its secret is in this answer only.
        endpoint = requests.post(
            f"{sb}/api/f/demo/webhooks",
            json={"url": hooks.url, "events": ["run.finished", "grant.required"]},
            headers=auth,
            timeout=30,
        )
        assert endpoint.status_code == 201, endpoint.text
        secret = endpoint.json()["secret"]
        # 3. A connect link for the admin's own demo account, back to the app after.
        link = requests.post(
            f"{sb}/api/f/demo/connect-links",
            json={"integration": "demo", "return_to": f"{APP}/done"},
            headers=auth,
            timeout=30,
        )
        assert link.status_code == 201, link.text
        # 4. The user opens it in a browser with no Scriptbox session and consents.
        browser = requests.Session()
        opened = open_connect_link(browser, link.json()["url"])
        assert opened.status_code == 302, opened.text
        callback = answer_consent(opened.headers["Location"], approve=True)
        back = browser.get(callback, allow_redirects=False, timeout=30)
        assert back.status_code == 302, back.text
        answer = parse_qs(urlsplit(back.headers["Location"]).query)
        assert back.headers["Location"].startswith(f"{APP}/done?")
        assert answer["status"] == ["connected"] and answer["account_id"][0].isdigit()
        # 5. The run, waited for.
        run = requests.post(
            f"{sb}/api/f/demo/runs",
            json={"script_id": script, "wait": 30},
            headers={**auth, "Idempotency-Key": "order-4711"},
            timeout=60,
        )
        assert run.status_code == 200, run.text
        assert run.json()["status"] == "succeeded", run.json()
        # 6. The webhook arrives, signed.
        got = hooks.next()
        headers, body = got.headers, got.body
        assert webhooks.verify(
            secret, headers["Scriptbox-Timestamp"], body, headers["Scriptbox-Signature"]
        )
        payload: dict[str, Any] = json.loads(body)
        assert payload["event"] == "run.finished"
        assert payload["data"]["run"]["id"] == run.json()["id"]
        assert payload["data"]["run"]["result"] == run.json()["result"]
        deliveries = requests.get(
            f"{sb}/api/f/demo/webhooks/{endpoint.json()['id']}/deliveries",
            headers=auth,
            timeout=30,
        )
        assert deliveries.status_code == 200
        assert deliveries.json()[0]["id"] == headers["Scriptbox-Delivery"]
        # ... and one delivery with its attempts; then a ping test, signed too.
        base = f"{sb}/api/f/demo/webhooks/{endpoint.json()['id']}"
        one = requests.get(
            f"{base}/deliveries/{headers['Scriptbox-Delivery']}", headers=auth, timeout=30
        )
        assert one.status_code == 200 and one.json()["attempt_log"][0]["number"] == 1
        ping = requests.post(f"{base}/test", headers=auth, timeout=30)
        assert ping.status_code == 202, ping.text
        got = hooks.next()
        assert got.headers["Scriptbox-Event"] == "ping"
        assert webhooks.verify(
            secret, got.headers["Scriptbox-Timestamp"], got.body, got.headers["Scriptbox-Signature"]
        )
    finally:
        hooks.close()


def _step(number: int) -> str:
    """The README walk-through's step `number`, up to the next one."""
    text = README.read_text()
    start = text.index(f"# {number}. ")
    return text[start : text.index(f"# {number + 1}. ", start)]


def test_the_readme_pages_a_filtered_list_with_its_filters(live: LiveServer) -> None:
    """Step 7's two curls, as written (but for a page of 1 run): the second page, asked
    with the Next-Cursor, lists the same filter's runs, never others after the cursor."""
    install_demo(live.app)
    with live.app.app_context():
        admin = db.session.scalar(select(User.id).where(User.email == "admin@example.com"))
        db.session.remove()
    assert admin is not None
    token = WebClient(live.app, live.url, admin).api("POST", "/api/tokens").json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    # Newest first: failed, succeeded, failed; a page of the failed ones skips the middle.
    for source in ("x = 1 / 0", "result = 1", "x = 1 / 0"):
        run = requests.post(
            f"{live.url}/api/f/demo/runs",
            json={"source": source, "wait": 30},
            headers=auth,
            timeout=60,
        )
        assert run.status_code == 200, run.text
    first, then = re.findall(r'curl -si? "\$SB(/api/f/demo/runs\?[^"]*)"', _step(7))
    assert "<Next-Cursor>" in then
    first = first.replace("limit=50", "limit=1")
    page = requests.get(f"{live.url}{first}", headers=auth, timeout=30)
    listed = [row["status"] for row in page.json()]
    while "Next-Cursor" in page.headers:
        cursor = page.headers["Next-Cursor"]
        url = then.replace("limit=50", "limit=1").replace("<Next-Cursor>", cursor)
        page = requests.get(f"{live.url}{url}", headers=auth, timeout=30)
        assert page.status_code == 200, page.text
        listed += [row["status"] for row in page.json()]
    assert listed == ["failed", "failed"]
