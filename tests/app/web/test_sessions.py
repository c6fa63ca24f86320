"""Issue 8.12: sessions end for real on sign-out, password change, removal from a
facility and an operator's action; open websockets of ended sessions close."""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import delete, func, select, update
from werkzeug.security import check_password_hash

from app import db
from app.cli import main as cli
from app.models import ApiToken, Facility, Membership, Role, User, UserSession
from app.models._types import utcnow
from app.testing import LiveServer, Socket, WebClient, token_websocket
from tests.app.web.conftest import Site
from tests.conftest import PASSWORD, add_member, create_user

NEW_PASSWORD = "a brand new passphrase"


class Browser:
    """A requests session that signs in through the login form, as a browser does."""

    def __init__(self, live: LiveServer) -> None:
        self.live = live
        self.http = requests.Session()

    def _csrf(self, path: str) -> str:
        page = self.http.get(f"{self.live.url}{path}", timeout=30)
        match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert match is not None, page.text[:300]
        return match.group(1)

    def sign_in(self, password: str = PASSWORD) -> requests.Response:
        csrf = self._csrf("/login")
        return self.http.post(
            f"{self.live.url}/login",
            data={"csrf_token": csrf, "email": "ada@example.com", "password": password},
            allow_redirects=False,
            timeout=30,
        )

    def form(self, path: str, data: dict[str, str]) -> requests.Response:
        csrf = self._csrf(path if path != "/logout" else "/settings/password")
        return self.http.post(
            f"{self.live.url}{path}", data={"csrf_token": csrf, **data}, timeout=30
        )

    def cookie(self) -> str:
        value = self.http.cookies.get("session")
        assert value
        return value

    def me(self, cookie: str | None = None) -> int:
        """GET /api/me with this browser's cookie (or a copy of an old one)."""
        jar = {"session": cookie or self.cookie()}
        return requests.get(f"{self.live.url}/api/me", cookies=jar, timeout=30).status_code


@pytest.fixture
def ada(site: Site) -> Browser:
    browser = Browser(site.live)
    assert browser.sign_in().status_code == 302
    assert browser.me() == 200
    return browser


def test_a_cookie_stops_working_after_sign_out(site: Site, ada: Browser) -> None:
    stolen = ada.cookie()  # e.g. copied from the browser before the user signed out
    ada.form("/logout", {})
    assert ada.me(stolen) == 401


def test_signing_out_ends_only_that_session(site: Site, ada: Browser) -> None:
    other = Browser(site.live)
    other.sign_in()
    ada.form("/logout", {})
    assert other.me() == 200


def test_changing_the_password_on_the_page_ends_every_other_session(
    site: Site, ada: Browser
) -> None:
    # Signed in: `ada` (the fixture), the WebClient `site.ada`, a laptop and a phone.
    laptop, phone = Browser(site.live), Browser(site.live)
    laptop.sign_in()
    phone.sign_in()
    stolen = phone.cookie()
    typo = laptop.form("/settings/password", {"current_password": PASSWORD,
                       "new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD + "x"})
    assert typo.status_code == 400 and "two new passwords differ" in typo.text
    answer = laptop.form("/settings/password", {"current_password": PASSWORD,
                         "new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD})
    assert answer.status_code == 200 and "Password changed. 3 other session(s)" in answer.text
    assert laptop.me() == 200  # the session that changed it goes on
    assert ada.me() == 401 and phone.me(stolen) == 401
    assert Browser(site.live).sign_in(PASSWORD).status_code == 401
    assert Browser(site.live).sign_in(NEW_PASSWORD).status_code == 302


def test_a_wrong_current_password_changes_nothing(site: Site, ada: Browser) -> None:
    other = Browser(site.live)
    other.sign_in()
    answer = other.form("/settings/password", {"current_password": "not it at all",
                        "new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD})
    assert answer.status_code == 400 and "not your current password" in answer.text
    assert ada.me() == 200 and other.me() == 200


def test_a_refused_password_change_puts_the_cursor_back_in_the_first_field(
    site: Site, ada: Browser
) -> None:
    # The page came back with every field empty and the focus nowhere: a keyboard user
    # tabbed past the top bar and the settings links to type all three again.
    page = ada.http.get(f"{site.live.url}/settings/password", timeout=30).text
    assert "autofocus" not in page  # a fresh page leaves the focus to the browser
    answer = ada.form("/settings/password", {"current_password": PASSWORD,
                      "new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD + "x"})
    assert answer.status_code == 400
    assert re.search(r'<input name="current_password"[^>]* autofocus', answer.text)


def test_changing_the_password_by_api_ends_the_other_sessions(site: Site, ada: Browser) -> None:
    response = site.ada.api(
        "POST",
        "/api/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert response.status_code == 200 and response.json() == {"sessions_ended": 1}
    assert ada.me() == 401
    assert site.ada.api("GET", "/api/me").status_code == 200


def test_a_session_past_its_lifetime_is_refused(site: Site, ada: Browser) -> None:
    with site.live.app.app_context():
        db.session.execute(update(UserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert ada.me() == 401


def _token(site: Site) -> str:
    made = site.ada.api("POST", "/api/tokens", json={"name": "ci"})
    assert made.status_code == 201, made.text
    token: str = made.json()["token"]
    return token


def _me_by_token(site: Site, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return requests.get(f"{site.live.url}/api/me", headers=headers, timeout=30).status_code


def test_the_operator_ends_every_session_and_api_token_of_a_user(
    site: Site, ada: Browser, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # end-sessions said "ended 0 session(s)" and left the user's API tokens working.
    token = _token(site)
    with site.live.app.app_context():
        someone = create_user(db.session(), email="someone@example.com")
        db.session.commit()
        theirs = WebClient(site.live.app, site.live.url, someone.id)
    their_token = theirs.api("POST", "/api/tokens", json={"name": "theirs"}).json()["token"]
    app = site.live.app
    monkeypatch.setenv("SCRIPTBOX_DATABASE_URL", app.config["DATABASE_URL"])
    monkeypatch.setenv("SCRIPTBOX_SECRET_KEY", app.config["SECRET_KEY"])
    monkeypatch.setenv("SCRIPTBOX_SECRET_KEYS", ",".join(app.config["SECRET_KEYS"]))
    result = CliRunner().invoke(cli, ["end-sessions", "--email", "ada@example.com"])
    assert result.exit_code == 0, result.output
    assert "ended 2 sessions and revoked 1 API token of ada@example.com" in result.output
    assert ada.me() == 401 and site.ada.api("GET", "/api/me").status_code == 401
    assert _me_by_token(site, token) == 401
    assert _me_by_token(site, their_token) == 200  # another user's stay


@pytest.mark.parametrize(
    ("method", "path", "body", "words"),
    [
        ("POST", "/api/tokens", {"name": "copy"},
         "an API token cannot create API tokens; create one under Settings → API tokens "
         "while signed in"),
        ("POST", "/api/me/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
         "an API token cannot change the password; change it under Settings → Password "
         "while signed in"),
    ],
)
def test_an_api_token_cannot_make_tokens_or_change_the_password(
    site: Site, method: str, path: str, body: dict[str, str], words: str
) -> None:
    # A leaked token made copies of itself (201 with a new sbx_ token) and could take the
    # account over through its password.
    token = _token(site)
    answer = requests.request(
        method, f"{site.live.url}{path}", json=body,
        headers={"Authorization": f"Bearer {token}"}, timeout=30,
    )
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"] == {"code": "forbidden", "message": words}
    with site.live.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ApiToken)) == 1
        user = db.session.get(User, site.ada_id)
        assert user is not None and check_password_hash(user.password_hash, PASSWORD)
    assert _me_by_token(site, token) == 200  # the token itself still works


def test_an_api_token_cannot_change_the_password_on_the_page(site: Site) -> None:
    token = _token(site)
    answer = requests.post(
        f"{site.live.url}/settings/password",
        data={"current_password": PASSWORD, "new_password": NEW_PASSWORD,
              "repeat_password": NEW_PASSWORD},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert answer.status_code == 403
    assert "change it under Settings → Password while signed in" in answer.text
    assert Browser(site.live).sign_in(PASSWORD).status_code == 302


def test_a_password_change_leaves_api_tokens_working(site: Site, ada: Browser) -> None:
    # As the README says: they stay until revoked (Settings → API tokens, or end-sessions).
    token = _token(site)
    changed = site.ada.api(
        "POST", "/api/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 200, changed.text
    assert _me_by_token(site, token) == 200


@pytest.fixture
def quick_recheck(site: Site) -> Site:
    site.live.app.config["WS_RECHECK_S"] = 0.1
    return site


def test_an_open_page_closes_when_its_session_is_signed_out(quick_recheck: Site) -> None:
    site = quick_recheck
    page = site.ada.websocket("lab")
    page.wait_for("hello")
    site.ada.post_form("/logout", {})
    ended = page.wait_for("error")
    assert ended["code"] == "session_ended"
    assert page.next(timeout=10) is None  # and the server closed it


def test_an_open_page_closes_when_the_member_is_removed(quick_recheck: Site) -> None:
    site = quick_recheck
    page = site.ada.websocket("lab")
    page.wait_for("hello")
    page.send({"type": "ping"})
    page.wait_for("pong")
    with site.live.app.app_context():
        db.session.execute(delete(Membership).where(Membership.user_id == site.ada_id))
        db.session.commit()
    assert page.wait_for("error")["code"] == "session_ended"
    assert page.next(timeout=10) is None


def _an_admin_and_ada_signed_in_twice(site: Site) -> tuple[WebClient, Browser, Socket]:
    """A client of lab's admin boss@example.com; Ada signed in again by the login form (a
    Browser, her second session) and her page's websocket, greeted."""
    live = site.live
    with live.app.app_context():
        lab = db.session.query(Facility).filter_by(slug="lab").one()
        boss = create_user(db.session(), email="boss@example.com")
        add_member(db.session(), user=boss, facility=lab, role=Role.admin)
        db.session.commit()
        boss_id = boss.id
    admin = WebClient(live.app, live.url, boss_id)
    browser = Browser(live)
    browser.sign_in()
    page = site.ada.websocket("lab")
    page.wait_for("hello")
    return admin, browser, page


def test_an_admin_signs_a_member_out_everywhere(quick_recheck: Site) -> None:
    site = quick_recheck
    admin, browser, page = _an_admin_and_ada_signed_in_twice(site)
    answer = admin.api("POST", f"/api/f/lab/members/{site.ada_id}/sign-out")
    assert answer.status_code == 200 and answer.json() == {"sessions_ended": 2}
    assert browser.me() == 401
    assert page.wait_for("error")["code"] == "session_ended"
    assert admin.api("GET", "/api/me").status_code == 200  # the admin's own session stays
    stranger = admin.api("POST", "/api/f/lab/members/999999/sign-out")
    assert stranger.status_code == 404


def test_removal_from_the_facility_ends_the_members_sessions(quick_recheck: Site) -> None:
    site = quick_recheck
    admin, browser, page = _an_admin_and_ada_signed_in_twice(site)
    assert admin.api("DELETE", f"/api/f/lab/members/{site.ada_id}").status_code == 204
    assert browser.me() == 401 and site.ada.api("GET", "/api/me").status_code == 401
    assert page.wait_for("error")["code"] == "session_ended"



def test_the_cookie_is_signed_again_only_when_the_session_changes(site: Site) -> None:
    browser = Browser(site.live)
    signed_in = browser.sign_in()
    assert "session=" in signed_in.headers.get("Set-Cookie", "")
    for _ in range(2):
        answer = browser.http.get(f"{site.live.url}/api/me", timeout=30)
        assert answer.status_code == 200
        assert "Set-Cookie" not in answer.headers  # nothing changed: no new signature
    # The cookie still expires with its server-side session (sign-in + lifetime).
    expires = next(c.expires for c in browser.http.cookies if c.name == "session")
    with site.live.app.app_context():  # the newest session is this sign-in's
        row = db.session.scalars(
            select(UserSession).order_by(UserSession.expires_at.desc())).first()
        assert row is not None
        server_expiry = row.expires_at.replace(tzinfo=UTC).timestamp()
    assert expires is not None and abs(expires - server_expiry) < 60


def test_an_open_page_of_an_api_token_closes_when_the_token_is_revoked(
    quick_recheck: Site,
) -> None:
    # A websocket opened with an API token was checked once: revoked, the token opened
    # nothing new, but its socket went on hearing the user's prompts and runs (an admin's,
    # every run of the facility) for as long as it stayed open.
    site = quick_recheck
    token = _token(site)
    page = token_websocket(site.live.url, "lab", token)
    page.wait_for("hello")
    [row] = _token_ids(site)
    assert site.ada.api("DELETE", f"/api/tokens/{row}").status_code == 204
    assert page.wait_for("error")["code"] == "session_ended"
    assert page.next(timeout=10) is None  # and the server closed it
    assert _me_by_token(site, token) == 401


def _token_ids(site: Site) -> list[int]:
    with site.live.app.app_context():
        return list(db.session.scalars(select(ApiToken.id).where(ApiToken.user_id == site.ada_id)))
