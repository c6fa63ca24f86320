"""Issue 8.10: `/login?next=` never sends a signed-in user to another host."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from app import db
from app.testing import LiveServer
from tests.conftest import PASSWORD, add_member, create_facility, create_user

NEXT_VALUES = [
    "/%09/evil.example",
    "/%0a/evil.example",
    "/%0d%0a/evil.example",
    "/%20/evil.example",
    "//evil.example",
    "/\\evil.example",
    "%2F%2Fevil.example",
    "https://evil.example/",
    "/%09%09/evil.example/path",
]


def _as_a_browser_reads(base: str, location: str) -> str:
    # The URL standard drops tabs and newlines and reads "\" as "/" in http(s) URLs.
    cleaned = re.sub(r"[\t\n\r]", "", location).replace("\\", "/")
    return urljoin(base + "/", cleaned)


def _sign_in(live: LiveServer, next_value: str) -> requests.Response:
    http = requests.Session()
    form = http.get(f"{live.url}/login?next={next_value}", timeout=30)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf is not None
    return http.post(
        f"{live.url}/login?next={next_value}",
        data={"csrf_token": csrf.group(1), "email": "ada@example.com", "password": PASSWORD},
        allow_redirects=False,
        timeout=30,
    )


@pytest.fixture
def site(live: LiveServer) -> LiveServer:
    with live.app.app_context():
        lab = create_facility(db.session(), slug="lab")
        add_member(db.session(), user=create_user(db.session()), facility=lab)
        db.session.commit()
    return live


@pytest.mark.parametrize("next_value", NEXT_VALUES)
def test_next_never_leaves_the_site(site: LiveServer, next_value: str) -> None:
    response = _sign_in(site, next_value)
    assert response.status_code == 302
    target = urlsplit(_as_a_browser_reads(site.url, response.headers["Location"]))
    assert target.netloc == urlsplit(site.url).netloc, response.headers["Location"]
    assert "evil.example" not in response.headers["Location"]


def test_a_same_site_next_is_kept(site: LiveServer) -> None:
    response = _sign_in(site, "/settings/tokens?x=1")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/settings/tokens"
