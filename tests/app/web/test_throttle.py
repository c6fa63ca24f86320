"""Issue 8.11: sign-in is throttled per account and per client address (429, Retry-After,
the reason in words on the login page), in memory or shared through Redis."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app import db
from app.testing import LiveServer
from tests.app.web.conftest import Site
from tests.conftest import PASSWORD, create_user, make_app

# A test database of its own (CI names one; never db 0).
REDIS_URL = os.environ.get("SCRIPTBOX_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def sign_in(
    live: LiveServer, email: str, password: str, *, headers: dict[str, str] | None = None
) -> requests.Response:
    """One sign-in through the form, from a fresh browser (with `headers` on each request)."""
    http = requests.Session()
    http.headers.update(headers or {})
    form = http.get(f"{live.url}/login", timeout=30)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf is not None
    return http.post(
        f"{live.url}/login",
        data={"csrf_token": csrf.group(1), "email": email, "password": password},
        allow_redirects=False,
        timeout=30,
    )


def assert_throttled(response: requests.Response) -> int:
    assert response.status_code == 429
    seconds = int(response.headers["Retry-After"])
    assert 0 < seconds <= 300
    assert re.search(r"Too many sign-in attempts\. Try again in \d+ s\.", response.text)
    return seconds


def test_forty_wrong_passwords_then_the_right_one_is_refused(site: Site) -> None:
    answers = [sign_in(site.live, "ada@example.com", f"guess {n}") for n in range(40)]
    assert [a.status_code for a in answers[:10]] == [401] * 10
    for answer in answers[10:]:
        assert_throttled(answer)
    assert_throttled(sign_in(site.live, "ada@example.com", PASSWORD))


def test_one_address_guessing_many_accounts_is_throttled(site: Site) -> None:
    answers = [sign_in(site.live, f"nobody{n}@example.com", "guess") for n in range(31)]
    assert [a.status_code for a in answers[:30]] == [401] * 30
    assert_throttled(answers[30])
    # The address is spent: even the right password of an untouched account waits.
    assert_throttled(sign_in(site.live, "ada@example.com", PASSWORD))


def test_signing_in_starts_the_accounts_count_over(site: Site) -> None:
    for n in range(9):
        assert sign_in(site.live, "ada@example.com", f"typo {n}").status_code == 401
    assert sign_in(site.live, "ada@example.com", PASSWORD).status_code == 302
    for n in range(9):
        assert sign_in(site.live, "ada@example.com", f"typo {n}").status_code == 401


@pytest.fixture
def redis_servers(tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer, str]]:
    """Two web processes' worth of apps sharing one Redis test database; keys cleaned up."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    email = f"shared-{secrets.token_hex(6)}@example.com"
    servers = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        app = make_app(folder, REDIS_URL=REDIS_URL)
        with app.app_context():
            create_user(db.session(), email=email)
            db.session.commit()
        servers.append(LiveServer(app))
    try:
        yield servers[0], servers[1], email
    finally:
        for server in servers:
            server.close()
        for key in client.scan_iter(match=f"*{email}*"):
            client.delete(key)
        for key in client.scan_iter(match="*login-address*127.0.0.1*"):
            client.delete(key)
        client.close()


def test_with_redis_every_process_shares_the_count(
    redis_servers: tuple[LiveServer, LiveServer, str],
) -> None:
    one, two, email = redis_servers
    for n in range(10):
        assert sign_in(one, email, f"guess {n}").status_code == 401
    assert_throttled(sign_in(two, email, PASSWORD))
