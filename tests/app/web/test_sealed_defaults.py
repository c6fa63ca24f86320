"""Default header and query values are sealed, through the REST API: stored encrypted,
shown masked to admins, not shown to members at all, still sent with every call, and, where
they look like secrets, redacted from what the upstream echoes back to a script."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import db
from app.devprovider import ProviderConfig, create_provider_app, serve_in_thread
from app.integrations.defaults import MASKED
from app.integrations.redaction import REDACTED
from app.models import Integration, Role
from app.testing import LiveServer
from tests.conftest import signed_in_lab

CSRF = "test-csrf-token"
HEADERS = {"X-CSRF-Token": CSRF}
HEADER_SECRET = "static-header-secret-7731"
QUERY_SECRET = "static-query-secret-4409"
# Not shaped like a generated key, but named like one.
NAMED_SECRET = "hunter-two"
# Public words, sent as they are and echoed as they are.
API_VERSION = "2022-11-28"
ACCEPT = "application/vnd.keyed+json"
ECHO = """
echo = integrations.get("keyed", "/echo").json()
result = {"header": echo["headers"].get("x-static-token"), "query": echo["args"].get("tenant"),
          "named": echo["headers"].get("x-partner-key"),
          "version": echo["headers"].get("x-api-version"), "accept": echo["headers"].get("accept"),
          "body": echo["body"]}
"""


@pytest.fixture
def world(live: LiveServer) -> Iterator[dict[str, Any]]:
    provider_app = create_provider_app(ProviderConfig(api_keys={"the-key-31": None}))
    with serve_in_thread(provider_app) as provider:
        with live.app.app_context():
            roles = (Role.admin, Role.scripter, Role.member)
            clients = signed_in_lab(live.app, roles=roles, csrf=CSRF)
            db.session.remove()
        admin = clients["admin"]
        created = admin.post(
            "/api/f/lab/integrations",
            json={
                "key": "keyed",
                "name": "Keyed",
                "auth_mode": "api_key",
                "base_url": f"{provider.url}/keyapi",
                "placements": [
                    {"location": "header", "name": "X-API-Key", "template": "{api_key}"}
                ],
                "default_headers": {"X-Static-Token": HEADER_SECRET,
                                    "X-Partner-Key": NAMED_SECRET,
                                    "X-Api-Version": API_VERSION, "Accept": ACCEPT},
                "default_query": {"tenant": QUERY_SECRET},
            },
            headers=HEADERS,
        )
        assert created.status_code == 201, created.get_json()
        master = admin.post(
            "/api/f/lab/integrations/keyed/master",
            json={"fields": {"api_key": "the-key-31"}},
            headers=HEADERS,
        )
        assert master.status_code == 201, master.get_json()
        yield {"live": live, **clients}


def _secrets_in(text: str) -> list[str]:
    return [s for s in (HEADER_SECRET, QUERY_SECRET, NAMED_SECRET) if s in text]


def test_admins_see_names_with_masked_values(world: dict[str, Any]) -> None:
    admin = world["admin"]
    for path in ("/api/f/lab/integrations", "/api/f/lab/integrations/keyed"):
        answer = admin.get(path)
        assert _secrets_in(answer.get_data(as_text=True)) == [], path
    view = admin.get("/api/f/lab/integrations/keyed").get_json()
    assert view["default_headers"] == {
        "X-Static-Token": MASKED, "X-Partner-Key": MASKED, "X-Api-Version": MASKED,
        "Accept": MASKED}
    assert view["default_query"] == {"tenant": MASKED}
    page = admin.get("/f/lab/manage/integrations/keyed").get_data(as_text=True)
    assert _secrets_in(page) == []
    assert f"X-Static-Token: {MASKED}" in page


def test_members_get_only_what_connecting_needs(world: dict[str, Any]) -> None:
    member = world["member"]
    listed = member.get("/api/f/lab/integrations").get_json()[0]
    one = member.get("/api/f/lab/integrations/keyed").get_json()
    for view in (listed, one):
        assert not {"default_headers", "default_query", "base_url", "placements"} & set(view)
        assert view["credential_fields"] == ["api_key"]
    assert _secrets_in(member.get("/api/f/lab/integrations").get_data(as_text=True)) == []


def test_the_values_are_stored_encrypted_and_still_sent(world: dict[str, Any]) -> None:
    live: LiveServer = world["live"]
    with live.app.app_context():
        row = db.session.query(Integration).one()
        assert row.defaults_enc and _secrets_in(row.defaults_enc) == []
        assert set(row.default_headers) == {"X-Static-Token", "X-Partner-Key", "X-Api-Version",
                                            "Accept"}
        assert set(row.default_headers.values()) == {""}
        db.session.remove()
    database = Path(live.app.config["DATABASE_URL"].removeprefix("sqlite:///"))
    for file in (database, database.with_name(database.name + "-wal")):
        if file.exists():
            assert HEADER_SECRET.encode() not in file.read_bytes(), file

    def run() -> dict[str, Any]:
        answer = world["scripter"].post(
            "/api/f/lab/runs", json={"source": ECHO, "wait": 60}, headers=HEADERS
        )
        result: dict[str, Any] = answer.get_json()["result"]
        return result

    # Sent: the upstream got them (and echoed them, redacted on the way back).
    sent = {"header": REDACTED, "query": REDACTED, "named": REDACTED, "version": API_VERSION,
            "accept": ACCEPT, "body": ""}
    assert run() == sent
    renamed = world["admin"].patch(
        "/api/f/lab/integrations/keyed", json={"name": "Renamed"}, headers=HEADERS
    )
    assert renamed.status_code == 200
    assert run() == sent  # kept when not sent


def test_the_url_a_script_gets_back_holds_no_default_query_value(
    world: dict[str, Any],
) -> None:
    # The answer's `url` is the URL that was sent, query and all: it handed every script
    # the sealed value of a default query parameter (a tenant token), which admins
    # themselves see only masked, with no echo needed. The script's own parameters stay.
    source = 'result = integrations.get("keyed", "/echo", params={"page": "2"}).url'
    answer = world["scripter"].post(
        "/api/f/lab/runs", json={"source": source, "wait": 60}, headers=HEADERS
    )
    url = answer.get_json()["result"]
    assert isinstance(url, str) and "/keyapi/echo?" in url and "page=2" in url
    assert _secrets_in(url) == [] and "tenant" not in url
