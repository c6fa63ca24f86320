"""Sign-in throttling behind reverse proxies: SCRIPTBOX_TRUSTED_PROXY_HOPS says how many
X-Forwarded-For entries (from the right) are the proxies' word; the rest is the client's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app import db
from app.config import ConfigError
from app.testing import LiveServer
from tests.app.web.test_throttle import assert_throttled, sign_in
from tests.conftest import PASSWORD, create_user, make_app


def _serve(tmp_path: Path, hops: int) -> LiveServer:
    app = make_app(tmp_path, TRUSTED_PROXY_HOPS=hops, LOGIN_ATTEMPTS_PER_ADDRESS="3 per 5 minutes")
    with app.app_context():
        create_user(db.session())
        db.session.commit()
    return LiveServer(app)


@pytest.fixture
def behind_one_proxy(tmp_path: Path) -> Iterator[LiveServer]:
    server = _serve(tmp_path, 1)
    yield server
    server.close()


@pytest.fixture
def no_proxy(tmp_path: Path) -> Iterator[LiveServer]:
    server = _serve(tmp_path, 0)
    yield server
    server.close()


def _via(client: str) -> dict[str, str]:
    return {"X-Forwarded-For": client}


def test_behind_a_proxy_each_client_address_has_its_own_count(
    behind_one_proxy: LiveServer,
) -> None:
    live = behind_one_proxy
    client = _via("203.0.113.7")
    for n in range(3):
        assert sign_in(live, f"nobody{n}@example.com", "x", headers=client).status_code == 401
    assert_throttled(sign_in(live, "nobody9@example.com", "x", headers=client))
    # Another client behind the same proxy (all come from 127.0.0.1) is not held back.
    answer = sign_in(live, "ada@example.com", PASSWORD, headers=_via("203.0.113.8"))
    assert answer.status_code == 302
    # A client that writes its own X-Forwarded-For gets it appended to by the proxy:
    # only the proxy's entry (the last one) counts, so the forgery does not help.
    forged = _via("198.51.100.1, 203.0.113.7")
    assert_throttled(sign_in(live, "ada@example.com", PASSWORD, headers=forged))


def test_without_trusted_proxies_a_forged_header_changes_nothing(no_proxy: LiveServer) -> None:
    live = no_proxy
    for n in range(3):
        headers = _via(f"198.51.100.{n}")
        assert sign_in(live, f"nobody{n}@example.com", "x", headers=headers).status_code == 401
    # Every attempt came from 127.0.0.1 whatever the header said: that address is spent.
    assert_throttled(sign_in(live, "ada@example.com", PASSWORD, headers=_via("198.51.100.50")))


@pytest.mark.parametrize("hops", [-1, "two", 11, True])
def test_the_hops_setting_is_checked_at_start(tmp_path: Path, hops: object) -> None:
    with pytest.raises(ConfigError, match="TRUSTED_PROXY_HOPS"):
        make_app(tmp_path, TRUSTED_PROXY_HOPS=hops)
