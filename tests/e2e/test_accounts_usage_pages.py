"""Accounts and usage in Debian's Chromium (issue 11, items 7, 8 and 4's examples), at 1280
and 375 px: the usage chart with its quota line, the quota form and the empty state, an
account's identity and the one-account setting, and the editor help's example calls."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app import db
from app.devprovider import ProviderConfig, create_provider_app, serve_in_thread
from app.models import CallLog, Facility, Role
from app.services import integrations_admin
from app.testing import LiveServer
from tests.conftest import PASSWORD, add_member, create_facility, create_integration, create_user
from tests.e2e.people import fits

pytestmark = pytest.mark.browser
BASIC = {
    "auth_mode": "basic",
    "credential_fields": ["username", "password"],
    "placements": [
        {"location": "basic", "name": None, "template": "{username}",
         "password_template": "{password}"}
    ],
}


@pytest.fixture(scope="module")
def keyapi() -> Iterator[str]:
    provider = create_provider_app(ProviderConfig(basic_users={"grace": "grace-pw-123"}))
    with serve_in_thread(provider) as server:
        yield f"{server.url}/keyapi"


@pytest.fixture
def lab(live: LiveServer, keyapi: str) -> LiveServer:
    """Facility `lab`: admin Avery, member Mia, GitHub and Slack from the catalog, and a
    Basic-auth API whose who-am-I request names the account."""
    with live.app.app_context():
        session = db.session()
        facility = create_facility(session, slug="lab", name="The Lab")
        for email, role in (("avery@example.com", Role.admin), ("mia@example.com", Role.member)):
            add_member(session, user=create_user(session, email=email), facility=facility,
                       role=role)
        for key in ("github", "slack"):
            integrations_admin.create_from_catalog(
                session, facility=facility, catalog_key=key, client_id="id",
                client_secret="secret",
            )
        create_integration(session, facility=facility, key="named", name="Named API",
                           base_url=keyapi, **BASIC,
                           whoami={"method": "GET", "path": "/me", "field": "username"})
        session.commit()
    return live


def _calls(live: LiveServer, counts: dict[tuple[int, str], int]) -> None:
    """Call log rows: {(months back, integration key): how many}."""
    now = datetime.now(UTC).replace(day=15, hour=12)
    with live.app.app_context():
        facility = db.session.query(Facility).filter_by(slug="lab").one()
        for (back, key), count in counts.items():
            when = now - timedelta(days=31 * back)
            for _ in range(count):
                db.session.add(CallLog(facility_id=facility.id, integration_key=key,
                                       method="GET", path="/", status=200, created_at=when))
        db.session.commit()


def _page(browser: Any, live: LiveServer, email: str, width: int, scheme: str) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    page.goto(f"{live.url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    return page


@pytest.mark.parametrize(("width", "scheme"), [(1280, "light"), (375, "dark"), (1280, "dark")])
def test_the_usage_chart_shows_calls_per_month_and_the_quota_line(
    browser: Any, lab: LiveServer, width: int, scheme: str
) -> None:
    _calls(lab, {(0, "github"): 30, (0, "slack"): 12, (1, "github"): 20, (2, "slack"): 5})
    page = _page(browser, lab, "avery@example.com", width, scheme)
    page.goto(f"{lab.url}/f/lab/manage")
    page.click("text=Usage and quota")
    page.wait_for_url("**/f/lab/manage/usage")
    canvas = page.locator("#usage-chart")
    page.wait_for_function("() => !document.getElementById('usage-chart-box').hidden")
    assert page.locator("#usage-empty").is_hidden()
    assert "no quota line" in (canvas.get_attribute("aria-label") or "")
    rows = page.locator("#usage-table tbody tr")
    assert rows.count() == 6
    assert rows.nth(5).inner_text().split() == [rows.nth(5).inner_text().split()[0], "30", "12",
                                                 "42"]
    assert "42 calls (no quota)" in page.locator("#usage-summary").inner_text()

    page.fill("#quota-form input[name=quota]", "50")
    page.click("#quota-form button[type=submit]")
    page.locator("#quota-form .form-ok").wait_for(state="visible")
    assert "50 calls per month" in page.locator("#quota-form .form-ok").inner_text()
    page.wait_for_function(
        "() => document.getElementById('usage-chart').getAttribute('aria-label')"
        ".includes('quota line at 50')"
    )
    assert "of the 50-call quota" in page.locator("#usage-summary").inner_text()
    with lab.app.app_context():
        assert db.session.query(Facility).filter_by(slug="lab").one().monthly_call_quota == 50
        db.session.remove()
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 200
    fits(page, f"usage-chart-{width}-{scheme}")

    page.fill("#quota-form input[name=quota]", "-3")
    page.click("#quota-form button[type=submit]")  # the browser's own check stops it
    assert page.eval_on_selector("#quota-form input[name=quota]", "e => e.validity.valid") is False
    page.fill("#quota-form input[name=quota]", "")
    page.click("#quota-form button[type=submit]")
    page.wait_for_function(
        "() => document.getElementById('usage-chart').getAttribute('aria-label')"
        ".includes('no quota line')"
    )
    page.context.close()


@pytest.mark.parametrize("width", [1280, 375])
def test_the_empty_usage_page_says_what_to_do_next(
    browser: Any, lab: LiveServer, width: int
) -> None:
    page = _page(browser, lab, "avery@example.com", width, "light")
    page.goto(f"{lab.url}/f/lab/manage/usage")
    empty = page.locator("#usage-empty")
    empty.wait_for(state="visible")
    assert "write a script" in empty.inner_text()
    assert page.locator("#usage-chart-box").is_hidden()
    fits(page, f"usage-empty-{width}")
    page.context.close()


@pytest.mark.parametrize("width", [1280, 375])
def test_an_account_shows_who_it_is_and_one_account_means_reconnect(
    browser: Any, lab: LiveServer, width: int
) -> None:
    page = _page(browser, lab, "mia@example.com", width, "light")
    page.goto(f"{lab.url}/settings/integrations")
    row = page.locator(".integration-row[data-key=named]")
    row.locator("input[name=label]").fill("work")
    row.locator("input[name=username]").fill("grace")
    row.locator("input[name=password]").fill("grace-pw-123")
    with page.expect_navigation():
        row.locator("button[type=submit]").click()
    row.locator(".identity").wait_for()
    assert row.locator(".accounts li").first.inner_text().startswith("work signed in as grace")
    fits(page, f"settings-account-identity-{width}")

    admin = _page(browser, lab, "avery@example.com", width, "light")
    admin.goto(f"{lab.url}/f/lab/manage/integrations/named")
    settings = admin.locator("#integration-settings")
    settings.locator("select[name=accounts_per_user]").select_option("one")
    settings.locator("button[type=submit]").click()
    settings.locator(".form-ok").wait_for(state="visible")
    fits(admin, f"integration-one-account-setting-{width}")
    admin.context.close()

    page.reload()
    row = page.locator(".integration-row[data-key=named]")
    assert "One account per person" in row.locator(".one-account-note").inner_text()
    assert row.locator("button[type=submit]").inner_text() == "Reconnect"
    assert row.locator("input[name=label]").get_attribute("type") == "hidden"
    row.locator("input[name=username]").fill("grace")
    row.locator("input[name=password]").fill("grace-pw-123")
    with page.expect_navigation():  # the page reloads once the account is stored
        row.locator("button[type=submit]").click()
    row = page.locator(".integration-row[data-key=named]")
    row.locator(".identity").wait_for()
    assert row.locator(".accounts li").count() == 1  # reconnected, not a second account
    fits(page, f"settings-one-account-{width}")
    page.context.close()


@pytest.mark.parametrize("width", [1280, 375])
def test_the_editor_help_shows_each_integrations_example(
    browser: Any, lab: LiveServer, width: int
) -> None:
    page = _page(browser, lab, "avery@example.com", width, "light")
    page.goto(f"{lab.url}/f/lab/editor")
    help_panel = page.locator("details", has_text="Help: the script API")
    help_panel.locator("summary").click()
    text = help_panel.inner_text()
    assert 'integrations.get("github", "/user/repos?per_page=10")' in text
    assert 'integrations.get("slack", "/conversations.list?limit=20")' in text
    fits(page, f"editor-help-examples-{width}")
    page.context.close()
