"""Issue 8.11: sign-in is throttled per account and per client address (429, Retry-After,
the reason in words on the login page), in memory or shared through Redis."""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from werkzeug.security import check_password_hash

from app import db
from app.models import User
from app.testing import LiveServer, WebClient
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


# -- changing the password: the current one is guessed no more often than at sign-in ----------

NEW_PASSWORD = "a brand new passphrase"


def change_password(site: Site, current: str, new: str = NEW_PASSWORD) -> requests.Response:
    return site.ada.api(
        "POST", "/api/me/password", json={"current_password": current, "new_password": new}
    )


def change_on_the_page(site: Site, current: str) -> requests.Response:
    return site.ada.post_form(
        "/settings/password",
        {"current_password": current, "new_password": NEW_PASSWORD,
         "repeat_password": NEW_PASSWORD},
    )


def password_of_ada_is(site: Site, password: str) -> bool:
    with site.live.app.app_context():
        user = db.session.get(User, site.ada_id)
        assert user is not None
        return check_password_hash(user.password_hash, password)


def assert_password_throttled(response: requests.Response) -> None:
    assert response.status_code == 429, response.text
    seconds = int(response.headers["Retry-After"])
    assert 0 < seconds <= 300
    assert re.search(r"Too many password attempts\. Try again in \d+ s\.", response.text)


def test_wrong_current_passwords_by_api_are_throttled_like_sign_ins(site: Site) -> None:
    # Twelve wrong guesses were all 400, and the thirteenth changed the password.
    for n in range(10):
        answer = change_password(site, f"guess {n}")
        assert answer.status_code == 400 and "not your current password" in answer.text
    throttled = change_password(site, "guess 10")
    assert_password_throttled(throttled)
    error = throttled.json()["error"]
    assert error["code"] == "too_many_attempts"
    assert error["retry_after"] == int(throttled.headers["Retry-After"])
    assert_password_throttled(change_password(site, PASSWORD))  # even the right one waits
    assert password_of_ada_is(site, PASSWORD)
    # One count per account: the sign-in form waits too.
    assert_throttled(sign_in(site.live, "ada@example.com", PASSWORD))


def test_wrong_current_passwords_on_the_page_are_throttled(site: Site) -> None:
    for n in range(10):
        answer = change_on_the_page(site, f"guess {n}")
        assert answer.status_code == 400 and "not your current password" in answer.text
    assert_password_throttled(change_on_the_page(site, PASSWORD))
    assert password_of_ada_is(site, PASSWORD)


def test_sign_in_guesses_count_against_a_password_change(site: Site) -> None:
    for n in range(10):
        assert sign_in(site.live, "ada@example.com", f"guess {n}").status_code == 401
    assert_password_throttled(change_password(site, PASSWORD))
    assert password_of_ada_is(site, PASSWORD)


def test_the_right_current_password_starts_the_count_over(site: Site) -> None:
    for n in range(9):
        assert change_password(site, f"typo {n}").status_code == 400
    # Right, but the new one is too short: the owner is the one typing; no count held against them.
    short = change_password(site, PASSWORD, new="short")
    assert short.status_code == 400 and "at least" in short.text
    for n in range(9):
        assert change_password(site, f"typo {n}").status_code == 400
    assert change_password(site, PASSWORD).status_code == 200
    assert password_of_ada_is(site, NEW_PASSWORD)


def test_with_redis_password_guesses_on_one_process_count_on_another(
    redis_servers: tuple[LiveServer, LiveServer, str],
) -> None:
    one, two, email = redis_servers
    with one.app.app_context():
        user_id = db.session.scalars(select(User.id).where(User.email == email)).one()
    browser = WebClient(one.app, one.url, user_id)
    for n in range(10):
        answer = browser.api(
            "POST", "/api/me/password",
            json={"current_password": f"guess {n}", "new_password": NEW_PASSWORD},
        )
        assert answer.status_code == 400, answer.text
    assert_throttled(sign_in(two, email, PASSWORD))


def test_clearing_a_count_waits_for_the_memory_stores_expiry_of_that_key() -> None:
    """limits' MemoryStorage.clear popped a key while its expiry thread, holding the key's
    lock, was between reading its events and writing them back: that thread died of a
    KeyError after a sign-in that succeeded (seen in CI). Clear now takes the lock too."""
    from limits.storage import MemoryStorage

    from app.web.throttle import _limiter

    storage = _limiter("memory://", "test").storage
    assert isinstance(storage, MemoryStorage)
    assert storage.acquire_entry("k", limit=5, expiry=60)
    lock = storage.locks["k"]
    with lock:  # where the expiry thread stands between its read and its write
        clearing = threading.Thread(target=storage.clear, args=("k",))
        clearing.start()
        clearing.join(timeout=0.5)
        assert clearing.is_alive()
        assert "k" in storage.events
    clearing.join(timeout=30)
    assert not clearing.is_alive() and "k" not in storage.events
