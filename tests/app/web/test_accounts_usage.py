"""Accounts say who they are (the who-am-I request), one account or several per person, the
monthly quota set by admins and calls per integration per month (issue 11, items 7 and 8)."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from app import db
from app.devprovider import ProviderConfig, create_provider_app, serve_in_thread
from app.models import Account, CallLog, Facility, Integration, Role
from app.services.usage import usage_by_month
from app.testing import LiveServer, WebClient
from tests.conftest import add_member, create_facility, create_integration, create_user, stored

BASIC_USER, BASIC_PASSWORD = "grace", "grace-password-1"
BASIC = {
    "auth_mode": "basic",
    "credential_fields": ["username", "password"],
    "placements": [
        {"location": "basic", "name": None, "template": "{username}",
         "password_template": "{password}"}
    ],
}
GOOD = {"username": BASIC_USER, "password": BASIC_PASSWORD}


@pytest.fixture(scope="module")
def keyapi() -> Iterator[str]:
    """The dev provider's key/Basic API on loopback (its /me names the Basic user)."""
    provider = create_provider_app(ProviderConfig(basic_users={BASIC_USER: BASIC_PASSWORD}))
    with serve_in_thread(provider) as server:
        yield f"{server.url}/keyapi"


@pytest.fixture
def lab(live: LiveServer, keyapi: str) -> dict[str, Any]:
    """Facility `lab` with an admin and a member, and Basic integrations on the dev API."""
    with live.app.app_context():
        session = db.session()
        facility = create_facility(session, slug="lab")
        admin = create_user(session, email="avery@example.com")
        member = create_user(session, email="mia@example.com")
        add_member(session, user=admin, facility=facility, role=Role.admin)
        add_member(session, user=member, facility=facility, role=Role.member)
        whoami = {"method": "GET", "path": "/me", "field": "username"}
        create_integration(session, facility=facility, key="named", name="Named",
                           base_url=keyapi, whoami=whoami, **BASIC)
        # The echo reflects the request's headers: its "identity" would be the credential.
        create_integration(session, facility=facility, key="echoing", name="Echoing",
                           base_url=keyapi, **BASIC,
                           whoami={"method": "GET", "path": "/echo",
                                   "field": "headers.authorization"})
        create_integration(session, facility=facility, key="broken", name="Broken",
                           base_url=keyapi, **BASIC,
                           whoami={"method": "GET", "path": "/nowhere", "field": "username"})
        session.commit()
        ids = {"admin": admin.id, "member": member.id, "facility": facility.id}
    return {
        "admin": WebClient(live.app, live.url, ids["admin"]),
        "member": WebClient(live.app, live.url, ids["member"]),
        "facility_id": ids["facility"],
        "member_id": ids["member"],
        "live": live,
    }


def _connect(client: WebClient, key: str, label: str = "", fields: Any = None) -> Any:
    return client.api("POST", f"/api/f/lab/integrations/{key}/accounts",
                      json={"label": label, "fields": fields or GOOD})


def _stored(live: LiveServer, account_id: int) -> Account:
    return stored(live.app, Account, account_id)


def test_a_connected_account_shows_who_it_is_and_stores_no_token(lab: dict[str, Any]) -> None:
    response = _connect(lab["member"], "named")
    assert response.status_code == 201, response.text
    assert response.json()["identity"] == BASIC_USER
    listed = lab["member"].api("GET", "/api/f/lab/accounts").json()
    assert [a["identity"] for a in listed] == [BASIC_USER]
    account = _stored(lab["live"], response.json()["id"])
    assert account.identity == BASIC_USER
    assert BASIC_PASSWORD not in (account.identity or "")
    page = lab["member"].http.get(f"{lab['live'].url}/settings/integrations", timeout=30)
    assert f"signed in as <strong>{BASIC_USER}</strong>" in page.text


def test_an_identity_that_reflects_the_credential_is_dropped(lab: dict[str, Any]) -> None:
    response = _connect(lab["member"], "echoing")
    assert response.status_code == 201, response.text
    assert response.json()["identity"] is None


def test_a_failing_whoami_leaves_the_identity_blank_and_connects(lab: dict[str, Any]) -> None:
    response = _connect(lab["member"], "broken")
    assert response.status_code == 201, response.text
    assert response.json()["identity"] is None
    assert response.json()["status"] == "active"


def test_one_account_per_person_refuses_a_second_and_reconnects_the_first(
    lab: dict[str, Any],
) -> None:
    admin, member = lab["admin"], lab["member"]
    assert _connect(member, "named", "work").status_code == 201
    assert _connect(member, "named", "home").status_code == 201  # several by default
    changed = admin.api("PATCH", "/api/f/lab/integrations/named",
                        json={"accounts_per_user": "one"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["accounts_per_user"] == "one"
    member.api("DELETE", f"/api/f/lab/accounts/{_account_id(member, 'home')}")

    refused = _connect(member, "named", "personal")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "one_account_per_person"
    assert "'work' is connected already" in error["message"]
    again = _connect(member, "named", "work")  # the same label reconnects it
    assert again.status_code == 201
    labels = [a["label"] for a in member.api("GET", "/api/f/lab/accounts").json()]
    assert labels == ["work"]
    bad = admin.api("PATCH", "/api/f/lab/integrations/named", json={"accounts_per_user": "two"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "accounts_per_user"


def _account_id(client: WebClient, label: str) -> int:
    accounts = client.api("GET", "/api/f/lab/accounts").json()
    return int(next(a["id"] for a in accounts if a["label"] == label))


def test_admins_set_and_clear_the_quota_that_the_broker_enforces(lab: dict[str, Any]) -> None:
    admin, member = lab["admin"], lab["member"]
    assert admin.api("GET", "/api/f/lab/usage").json()["quota"] is None  # none by default
    assert member.api("PUT", "/api/f/lab/usage/quota", json={"quota": 5}).status_code == 403
    for wrong in ("5", 0, -1, 2.5, True, 10**12):
        refused = admin.api("PUT", "/api/f/lab/usage/quota", json={"quota": wrong})
        assert refused.status_code == 400, wrong
        assert refused.json()["error"]["field"] == "quota"
    assert admin.api("PUT", "/api/f/lab/usage/quota", json={"quota": 2}).json() == {"quota": 2}
    with lab["live"].app.app_context():
        assert db.session.get(Facility, lab["facility_id"]).monthly_call_quota == 2
        db.session.remove()
    assert _connect(member, "named").status_code == 201
    # A typo'd key first: refused before it goes out, it is neither usage nor a series.
    script = 'result = []\ntry:\n    integrations.get("nope", "/x")\nexcept integrations'
    script += ".IntegrationError as e:\n    result.append(e.code)\n"
    script += 'result += [integrations.get("named", "/me").status for _ in range(2)]\n'
    script += 'try:\n    integrations.get("named", "/me")\nexcept integrations.IntegrationError'
    script += " as e:\n    result.append(e.code)\n"
    with lab["live"].app.app_context():
        from app.models import Membership

        row = db.session.query(Membership).filter_by(user_id=lab["member_id"]).one()
        row.role = Role.scripter
        db.session.commit()
    run = member.api("POST", "/api/f/lab/runs", json={"source": script, "wait": 60}).json()
    assert run["result"] == ["unknown_integration", 200, 200, "quota_exceeded"], run
    # The refusals are in the call log (with their error) but not in the usage: it stays
    # at the quota, not past it.
    usage = admin.api("GET", "/api/f/lab/usage").json()
    assert usage["calls"] == {"named": 2} and usage["total"] == 2 and usage["quota"] == 2
    calls = admin.api("GET", "/api/f/lab/calls").json()
    assert [c["error"] for c in reversed(calls)] == [
        "unknown_integration", None, None, "quota_exceeded"
    ]
    assert admin.api("PUT", "/api/f/lab/usage/quota", json={"quota": None}).json() == {
        "quota": None
    }
    usage = admin.api("GET", "/api/f/lab/usage?months=3").json()
    assert usage["quota"] is None
    assert usage["calls"] == {"named": 2} and usage["total"] == 2
    assert [m["month"] for m in usage["months"]][-1] == usage["month"]
    assert len(usage["months"]) == 3 and usage["months"][-1]["calls"] == {"named": 2}
    assert admin.api("GET", "/api/f/lab/usage?months=99").status_code == 400


def test_usage_by_month_counts_each_month_apart(app: Any, session: Any) -> None:
    lab = create_facility(session, slug="lab")
    other = create_facility(session, slug="other")
    when = [
        (lab, "github", datetime(2024, 11, 30, 23, 59, tzinfo=UTC)),
        (lab, "github", datetime(2024, 12, 1, 0, 0, tzinfo=UTC)),
        (lab, "slack", datetime(2024, 12, 31, 12, 0, tzinfo=UTC)),
        (lab, "github", datetime(2025, 1, 2, tzinfo=UTC)),
        (other, "github", datetime(2024, 12, 5, tzinfo=UTC)),
        (lab, "github", datetime(2024, 9, 1, tzinfo=UTC)),  # before the window
    ]
    for facility, key, created in when:
        session.add(CallLog(facility_id=facility.id, integration_key=key, method="GET",
                            path="/", status=200, created_at=created))
    session.flush()
    months = usage_by_month(session, lab, months=3, now=datetime(2025, 1, 15, tzinfo=UTC))
    assert months == [
        {"month": "2024-11", "calls": {"github": 1}, "total": 1},
        {"month": "2024-12", "calls": {"github": 1, "slack": 1}, "total": 2},
        {"month": "2025-01", "calls": {"github": 1}, "total": 1},
    ]


def test_a_catalog_integration_takes_the_entrys_whoami(app: Any, session: Any) -> None:
    from app.services import integrations_admin

    lab = create_facility(session, slug="lab")
    github = integrations_admin.create_from_catalog(
        session, facility=lab, catalog_key="github", client_id="id", client_secret="s"
    )
    assert github.whoami == {"method": "GET", "path": "/user", "field": "login"}
    assert github.accounts_per_user == "several"
    slack = integrations_admin.create_from_catalog(
        session, facility=lab, catalog_key="slack", client_id="id", client_secret="s"
    )
    assert slack.whoami == {"method": "POST", "path": "/auth.test", "field": "user"}
    assert isinstance(session.get(Integration, github.id), Integration)


def test_every_catalog_entry_has_an_example_and_the_help_panel_shows_it(
    lab: dict[str, Any],
) -> None:
    from app.integrations.catalog import load_catalog
    from app.services import integrations_admin

    entries = load_catalog()
    assert all(entry.example is not None for entry in entries.values())
    with lab["live"].app.app_context():
        facility = db.session.get(Facility, lab["facility_id"])
        for key in ("github", "dropbox"):
            integrations_admin.create_from_catalog(
                db.session(), facility=facility, catalog_key=key, client_id="id",
                client_secret="secret",
            )
        db.session.commit()
    page = html.unescape(lab["admin"].http.get(f"{lab['live'].url}/f/lab/editor", timeout=30).text)
    assert 'resp = integrations.get("github", "/user/repos?per_page=10")' in page
    assert (
        'resp = integrations.request("dropbox", "POST", "/files/list_folder", json={"path": ""})'
        in page
    )
    assert 'resp = integrations.get("named", "/")' in page  # custom: its base URL


@pytest.mark.parametrize(
    ("whoami", "problem"),
    [
        ({"path": "/user", "field": "a b"}, "dotted path"),
        ({"path": "/../admin", "field": "login"}, "climb"),
        ({"path": "https://evil.example/user", "field": "login"}, "plain path"),
        ({"method": "DELETE", "path": "/user", "field": "login"}, "unknown value"),
        ({"path": "/user", "field": "login", "body": "x"}, "unknown field"),
    ],
)
def test_the_catalog_refuses_a_malformed_whoami(whoami: dict[str, Any], problem: str) -> None:
    from app.integrations.catalog import load_catalog
    from app.integrations.catalog_calls import whoami_dict
    from app.integrations.catalog_reader import CatalogError
    from app.integrations.catalog_validation import validate_entry

    raw = {
        "name": "GitHub", "auth_mode": "oauth2", "base_url": "https://api.github.com",
        "authorization_url": "https://github.com/login/oauth/authorize",
        "token_url": "https://github.com/login/oauth/access_token",
        "docs_url": "https://docs.github.com", "setup_guide": "Register an app.",
    }
    with pytest.raises(CatalogError, match=problem):
        validate_entry("github", {**raw, "whoami": whoami})
    assert whoami_dict(load_catalog()["github"].whoami) == {
        "method": "GET", "path": "/user", "field": "login"
    }
