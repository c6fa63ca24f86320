"""Issue 12.2: connect links run a user's sign-in in any browser, without a Scriptbox
session, and return to the embedding app with the outcome. Real provider on loopback.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from sqlalchemy import select

from app import db
from app.devprovider import (
    ClientSpec,
    ProviderConfig,
    answer_consent,
    create_provider_app,
    serve_in_thread,
)
from app.models import Account, ConnectLink, Facility, Role
from app.models._types import utcnow
from app.services import integrations_admin
from app.services.connect_links import LINK_LIFETIME, issue
from app.testing import LiveServer, WebClient
from tests.conftest import (
    add_member,
    create_facility,
    create_integration,
    create_user,
    demo_oauth_fields,
    open_connect_link,
    tenanted_oauth_fields,
)

EMBEDDER = "https://embedder.example"
API_KEY = "link-key"


@pytest.fixture
def provider(live: LiveServer) -> Iterator[str]:
    """A real OAuth2 provider (and API-key API) on loopback, knowing the app's callback."""
    callback = f"{live.app.config['PUBLIC_URL']}/oauth/callback"
    config = ProviderConfig(
        clients=[ClientSpec("link-client", "link-secret", [callback])],
        api_keys={API_KEY: None},
    )
    with serve_in_thread(create_provider_app(config)) as server:
        yield server.url


@pytest.fixture
def world(live: LiveServer, provider: str) -> dict[str, Any]:
    """Admin Ada (with an API token), member Mia, an OAuth and an API-key integration."""
    live.app.config["ALLOWED_RETURN_ORIGINS"] = [EMBEDDER]
    with live.app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        ada = create_user(session, email="ada@example.com")
        mia = create_user(session, email="mia@example.com")
        stranger = create_user(session, email="sam@example.com")
        add_member(session, user=ada, facility=lab, role=Role.admin)
        add_member(session, user=mia, facility=lab, role=Role.member)
        integrations_admin.create_custom(
            session,
            facility=lab,
            fields=demo_oauth_fields(
                provider,
                client_id="link-client",
                client_secret="link-secret",
                scopes=["read"],
                allow_private_network=True,
            ),
        )
        create_integration(session, facility=lab, key="keyed", base_url=f"{provider}/keyapi")
        session.commit()
        ids = {"ada": ada.id, "mia": mia.id, "stranger": stranger.id}
    ada_browser = WebClient(live.app, live.url, ids["ada"])
    token = ada_browser.api("POST", "/api/tokens", json={"name": "embedder"}).json()["token"]
    mia_browser = WebClient(live.app, live.url, ids["mia"])
    return {"live": live, "token": token, "ids": ids, "mia": mia_browser}


def _api(world: dict[str, Any], path: str, body: dict[str, Any]) -> requests.Response:
    live: LiveServer = world["live"]
    return requests.post(
        f"{live.url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {world['token']}"},
        timeout=30,
    )


def _link(world: dict[str, Any], **body: Any) -> str:
    answer = _api(world, "/api/f/lab/connect-links", body)
    assert answer.status_code == 201, answer.text
    url: str = answer.json()["url"]
    return url


def _open(world: dict[str, Any], url: str, browser: requests.Session) -> requests.Response:
    # The link is built from PUBLIC_URL; the test server listens elsewhere on loopback.
    live: LiveServer = world["live"]
    path = urlsplit(url).path
    return browser.get(f"{live.url}{path}", allow_redirects=False, timeout=30)


def _start(world: dict[str, Any], url: str, browser: requests.Session) -> requests.Response:
    """A person opening an OAuth link: its page, then its button; the answer redirects to
    the provider."""
    live: LiveServer = world["live"]
    return open_connect_link(browser, f"{live.url}{urlsplit(url).path}")


def _send(world: dict[str, Any], url: str, browser: requests.Session,
          form: requests.Response, **fields: str) -> requests.Response:
    """Send the key form the link's page `form` showed, with its CSRF token and `fields`."""
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf is not None
    live: LiveServer = world["live"]
    return browser.post(
        f"{live.url}{urlsplit(url).path}",
        data={"csrf_token": csrf.group(1), **fields},
        allow_redirects=False,
        timeout=30,
    )


def _callback(world: dict[str, Any], location: str, browser: requests.Session) -> requests.Response:
    live: LiveServer = world["live"]
    query = urlsplit(location).query
    return browser.get(f"{live.url}/oauth/callback?{query}", allow_redirects=False, timeout=30)


def _accounts(world: dict[str, Any]) -> list[Account]:
    with world["live"].app.app_context():
        return list(db.session.scalars(select(Account)))


def _outcome(response: requests.Response) -> dict[str, list[str]]:
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(f"{EMBEDDER}/done?"), location
    return parse_qs(urlsplit(location).query)


def test_a_link_made_by_api_runs_the_members_oauth_sign_in_in_a_fresh_browser(
    world: dict[str, Any],
) -> None:
    url = _link(
        world,
        integration="demo",
        user_id=world["ids"]["mia"],
        label="work",
        return_to=f"{EMBEDDER}/done?job=7",
    )
    browser = requests.Session()  # no Scriptbox session at all
    to_provider = _start(world, url, browser)
    assert to_provider.status_code == 302
    back = answer_consent(to_provider.headers["Location"], approve=True)
    outcome = _outcome(_callback(world, back, browser))
    assert outcome["status"] == ["connected"] and outcome["job"] == ["7"]
    [account] = _accounts(world)
    assert outcome["account_id"] == [str(account.id)]
    assert account.user_id == world["ids"]["mia"] and account.label == "work"
    # Mia sees it as her own account.
    mine = world["mia"].api("GET", "/api/f/lab/accounts").json()
    assert [a["id"] for a in mine] == [account.id]
    # Single use: the link does not open again, in this browser or another.
    again = _open(world, url, browser)
    assert again.status_code == 403 and "already used" in again.text
    assert _open(world, url, requests.Session()).status_code == 403


def test_a_links_answer_says_which_labelled_account_it_connects(world: dict[str, Any]) -> None:
    # The answer named the user, owner and integration but not the label: an app that asked
    # for " work " could not tell it would connect the account labelled "work".
    made = _api(world, "/api/f/lab/connect-links", {"integration": "keyed", "label": " work "})
    assert made.status_code == 201, made.text
    assert made.json()["label"] == "work"
    plain = _api(world, "/api/f/lab/connect-links", {"integration": "keyed"})
    assert plain.json()["label"] == ""
    with world["live"].app.app_context():
        assert sorted(db.session.scalars(select(ConnectLink.label))) == ["", "work"]


def test_refusing_at_the_provider_returns_refused_and_connects_nothing(
    world: dict[str, Any],
) -> None:
    url = _link(world, integration="demo", return_to=f"{EMBEDDER}/done")
    browser = requests.Session()
    to_provider = _start(world, url, browser)
    back = answer_consent(to_provider.headers["Location"], approve=False)
    outcome = _outcome(_callback(world, back, browser))
    assert outcome["status"] == ["refused"] and "account_id" not in outcome
    assert _accounts(world) == []


def test_a_sign_in_from_a_link_finished_in_another_browser_is_ended_for_good(
    world: dict[str, Any],
) -> None:
    url = _link(world, integration="demo", return_to=f"{EMBEDDER}/done")
    owner, thief = requests.Session(), requests.Session()
    to_provider = _start(world, url, owner)
    back = answer_consent(to_provider.headers["Location"], approve=True)
    stolen = _callback(world, back, thief)
    assert stolen.status_code == 400
    assert "another browser" in stolen.text
    assert _accounts(world) == []
    # Nor, later, the browser that opened the link: the stolen callback used its state up
    # (its code must not be finished anywhere), and the embedding app hears an error.
    assert _outcome(_callback(world, back, owner))["status"] == ["error"]
    assert _accounts(world) == []


def test_the_api_started_oauth_connection_completes_through_a_link(
    world: dict[str, Any],
) -> None:
    started = _api(world, "/api/f/lab/integrations/demo/accounts", {"label": "ci"})
    assert started.status_code == 200, started.text
    url = started.json()["authorization_url"]
    assert "/connect/" in url
    browser = requests.Session()
    back = answer_consent(_start(world, url, browser).headers["Location"], approve=True)
    done = _callback(world, back, browser)
    assert done.status_code == 200 and "Demo OAuth is connected" in done.text
    [account] = _accounts(world)
    assert account.user_id != world["ids"]["mia"] and account.label == "ci"


def test_a_key_form_link_connects_with_the_users_key(world: dict[str, Any]) -> None:
    url = _link(
        world, integration="keyed", user_id=world["ids"]["mia"], return_to=f"{EMBEDDER}/done"
    )
    browser = requests.Session()
    form = _open(world, url, browser)
    assert form.status_code == 200
    answer = _send(world, url, browser, form, api_key=API_KEY)
    outcome = _outcome(answer)
    [account] = _accounts(world)
    assert outcome == {"status": ["connected"], "account_id": [str(account.id)]}
    assert account.user_id == world["ids"]["mia"]


def test_a_key_form_link_says_every_wrong_field_at_once(world: dict[str, Any]) -> None:
    """A key with a line break and a region with a space: the page said the first only,
    and once it was fixed, the other (the fields are checked together now)."""
    live: LiveServer = world["live"]
    with live.app.app_context():
        lab = db.session.scalars(select(Facility).where(Facility.slug == "lab")).one()
        integrations_admin.create_custom(db.session(), facility=lab, fields={
            "key": "regional", "name": "Regional", "auth_mode": "api_key",
            "base_url": "https://{region}.example.com", "credential_fields": ["api_key"],
            "parameters": [{"name": "region", "label": "Region", "pattern": "^[a-z]+$"}],
            "placements": [{"location": "header", "name": "X-Key", "template": "{api_key}"}],
        })
        db.session.commit()
        db.session.remove()
    url = _link(world, integration="regional", user_id=world["ids"]["mia"])
    browser = requests.Session()
    form = _open(world, url, browser)
    answer = _send(world, url, browser, form, api_key="a\nb", param_region="E U")
    assert answer.status_code == 400
    said = html.unescape(answer.text)
    assert ('role="alert">the api key has invalid characters; Region has characters that'
            " are not allowed<") in said
    assert _accounts(world) == []


def test_declining_the_key_form_returns_refused(world: dict[str, Any]) -> None:
    url = _link(world, integration="keyed", return_to=f"{EMBEDDER}/done")
    browser = requests.Session()
    form = _open(world, url, browser)
    answer = _send(world, url, browser, form, refuse="1")
    assert _outcome(answer) == {"status": ["refused"]}
    assert _accounts(world) == []


def test_an_expired_link_says_so(world: dict[str, Any]) -> None:
    url = _link(world, integration="keyed")
    with world["live"].app.app_context():
        link = db.session.scalars(select(ConnectLink)).one()
        link.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    page = _open(world, url, requests.Session())
    assert page.status_code == 403 and "expired" in page.text


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"integration": "demo", "return_to": "https://evil.example/x"}, 400, "return_to"),
        ({"integration": "nope"}, 404, None),
        ({"integration": 5}, 400, "integration"),
        ({}, 400, "integration"),
    ],
)
def test_links_are_refused_for_bad_input(
    world: dict[str, Any], body: dict[str, Any], status: int, field: str | None
) -> None:
    answer = _api(world, "/api/f/lab/connect-links", body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"].get("field") == field


def test_a_return_to_off_the_allowed_origins_names_the_setting(world: dict[str, Any]) -> None:
    # The 400 said only "return_to must be on an allowed origin": nothing said where
    # allowed origins are set, or that it is the server operator's to change.
    answer = _api(
        world,
        "/api/f/lab/connect-links",
        {"integration": "demo", "return_to": "https://Other.example:8443/done?x=1"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["message"] == (
        "return_to must be on an allowed origin: https://other.example:8443 is not in "
        "SCRIPTBOX_ALLOWED_RETURN_ORIGINS; ask the server's operator to add it there "
        "(comma-separated origins such as https://app.example.com)"
    )
    # A server that allows none says so.
    world["live"].app.config["ALLOWED_RETURN_ORIGINS"] = []
    answer = _api(
        world, "/api/f/lab/connect-links", {"integration": "demo", "return_to": f"{EMBEDDER}/x"}
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == {
        **answer.json()["error"],
        "field": "return_to",
        "message": "return_to must be on an allowed origin, and this server allows none: its "
        "operator lists them in SCRIPTBOX_ALLOWED_RETURN_ORIGINS (comma-separated origins "
        "such as https://app.example.com); or leave return_to out",
    }


@pytest.mark.parametrize("return_to", ["/done", "//embedder.example/done", "javascript:alert(1)"])
def test_a_return_to_that_is_no_absolute_url_says_so(
    world: dict[str, Any], return_to: str
) -> None:
    # A relative return_to was refused as if its origin were "://" (or "javascript://"),
    # and the 400 told the developer to have the operator add that origin to the setting.
    body = {"integration": "demo", "return_to": return_to}
    answer = _api(world, "/api/f/lab/connect-links", body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == {
        "code": "invalid_input",
        "field": "return_to",
        "message": "return_to must be an absolute URL with its scheme and host, such as "
        "https://app.example.com/done, on an allowed origin",
    }


def test_only_admins_make_links_for_others_and_only_for_members(world: dict[str, Any]) -> None:
    mia: WebClient = world["mia"]
    for_ada = mia.api(
        "POST", "/api/f/lab/connect-links", json={"integration": "demo", "user_id": 1}
    )
    assert for_ada.status_code == 403
    stranger = _api(
        world,
        "/api/f/lab/connect-links",
        {"integration": "demo", "user_id": world["ids"]["stranger"]},
    )
    assert stranger.status_code == 404


def test_an_admin_token_connects_the_facility_master_account_through_a_link(
    world: dict[str, Any],
) -> None:
    started = _api(
        world, "/api/f/lab/integrations/demo/master", {"return_to": f"{EMBEDDER}/done"}
    )
    assert started.status_code == 200, started.text
    url = started.json()["authorization_url"]
    assert "/connect/sbc_" in url
    # A browser with no Scriptbox session at all signs in at the provider.
    browser = requests.Session()
    back = answer_consent(_start(world, url, browser).headers["Location"], approve=True)
    outcome = _outcome(_callback(world, back, browser))
    assert outcome["status"] == ["connected"]
    [account] = _accounts(world)
    assert account.owner_kind == "master" and account.user_id is None
    assert outcome["account_id"] == [str(account.id)]
    # Single use: the same link again is refused with a clear page.
    again = _open(world, url, requests.Session())
    assert again.status_code == 403 and "already used" in again.text


def test_master_links_are_for_admins_and_for_themselves(world: dict[str, Any]) -> None:
    mia: WebClient = world["mia"]
    refused = mia.api(
        "POST", "/api/f/lab/connect-links", json={"integration": "demo", "owner": "master"}
    )
    assert refused.status_code == 403, refused.text
    for_someone_else = _api(
        world,
        "/api/f/lab/connect-links",
        {"integration": "demo", "owner": "master", "user_id": world["ids"]["mia"]},
    )
    assert for_someone_else.status_code == 400
    assert for_someone_else.json()["error"]["field"] == "user_id"
    made = _api(world, "/api/f/lab/connect-links", {"integration": "demo", "owner": "master"})
    assert made.status_code == 201 and made.json()["owner"] == "master"


def test_a_forged_link_gets_a_clear_page(world: dict[str, Any]) -> None:
    live: LiveServer = world["live"]
    forged = requests.get(f"{live.url}/connect/sbc_forged", timeout=30)
    assert forged.status_code == 404 and "not valid" in forged.text
    assert _way_back(forged) is None  # no link, so no app to name or go back to


def _way_back(page: requests.Response) -> str | None:
    """Where the refused link's page's button back to the app leads, if it has one."""
    found = re.search(r'<a class="button" href="([^"]+)">Back to ([^<]+)</a>', page.text)
    if found is None:
        return None
    assert found.group(2) == "embedder.example"
    return html.unescape(found.group(1))


def _spend(world: dict[str, Any], made: dict[str, Any], how: str) -> None:
    """Make link `made` open no more: expired, used (connected) or revoked."""
    if how == "expired":
        with world["live"].app.app_context():
            link = db.session.get(ConnectLink, made["id"])
            assert link is not None
            link.expires_at = utcnow() - timedelta(seconds=1)
            db.session.commit()
    elif how == "used":
        browser = requests.Session()
        form = _open(world, made["url"], browser)
        done = _send(world, made["url"], browser, form, api_key=API_KEY)
        assert done.status_code in (200, 302), done.text  # its page, or back to the app
    else:
        assert _revoke(world, made["id"]).status_code == 204


@pytest.mark.parametrize("how", ["expired", "used", "revoked"])
def test_a_refused_link_with_return_to_offers_the_way_back_without_going(
    world: dict[str, Any], how: str
) -> None:
    # Its page was a dead end: the person had no way back to the app that sent them,
    # which had no word of why. A button, not a redirect: a mail scanner's GET must not
    # bounce, and the person reads why first.
    made = _made(world, integration="keyed", return_to=f"{EMBEDDER}/done?job=7")
    plain = _made(world, integration="keyed")
    early = requests.Session()  # its page was shown before the link stopped opening
    form = _open(world, made["url"], early)
    _spend(world, made, how)
    _spend(world, plain, how)
    assert _state(world, made["id"])["state"] == how
    page = _open(world, made["url"], requests.Session())
    assert page.status_code == 403 and "Location" not in page.headers
    back = _way_back(page)
    assert back is not None and back.startswith(f"{EMBEDDER}/done?")
    assert parse_qs(urlsplit(back).query) == {"job": ["7"], "status": [how]}
    posted = _send(world, made["url"], early, form, api_key=API_KEY)
    assert posted.status_code == 403 and _way_back(posted) == back
    # Without a return_to, the page is as it was: its own next step, no way back.
    alone = _open(world, plain["url"], requests.Session())
    assert alone.status_code == 403 and _way_back(alone) is None
    assert "ask whoever sent you this link for a new one" in alone.text


def test_a_link_without_return_to_ends_on_a_page_with_the_links_own_next_step(
    world: dict[str, Any],
) -> None:
    # The pages used to speak to a member in a prompt's window ("The script that asked for
    # it continues on its own", "Go back to Scriptbox and start the sign-in again"), to
    # someone who may have no Scriptbox page at all.
    url = _link(world, integration="keyed", user_id=world["ids"]["mia"])
    browser = requests.Session()
    form = _open(world, url, browser)
    done = _send(world, url, browser, form, api_key=API_KEY)
    assert done.status_code == 200
    assert "Keyed is connected." in done.text and "You can close this window." in done.text
    assert "The script that asked for it" not in done.text
    again = _open(world, url, browser)
    assert again.status_code == 403
    assert "To connect later, ask whoever sent you this link for a new one." in again.text
    assert "Back to Scriptbox" not in again.text and "start the sign-in again" not in again.text


def _with_query(location: str, **extra: str) -> str:
    """The provider's redirect back with `extra` parameters added (as a forger would)."""
    return f"{location}&{urlencode(extra)}"


@pytest.mark.parametrize(
    ("declared", "sent", "words"),
    [
        (None, "https://evil.example.com", "names another provider as its issuer"),
        ("https://issuer.example.com", "https://issuer.example.com", None),
        ("https://issuer.example.com", None, "its issuer does not match"),
        ("https://issuer.example.com", "https://evil.example.com", "its issuer does not match"),
    ],
)
def test_a_link_sign_ins_callback_checks_its_issuer(
    world: dict[str, Any], declared: str | None, sent: str | None, words: str | None
) -> None:
    # The link's callback read neither `iss` nor `error_description`: a forged issuer was
    # connected, and the right one of an integration that declares it was refused.
    if declared:
        patched = requests.patch(
            f"{world['live'].url}/api/f/lab/integrations/demo",
            json={"issuer": declared},
            headers={"Authorization": f"Bearer {world['token']}"},
            timeout=30,
        )
        assert patched.status_code == 200, patched.text
    url = _link(world, integration="demo", user_id=world["ids"]["mia"])
    browser = requests.Session()
    back = answer_consent(_start(world, url, browser).headers["Location"], approve=True)
    done = _callback(world, _with_query(back, iss=sent) if sent else back, browser)
    if words is None:
        assert done.status_code == 200 and "Demo OAuth is connected" in done.text
        assert len(_accounts(world)) == 1
    else:
        assert done.status_code == 400 and words in done.text
        assert _accounts(world) == []


def test_a_link_sign_ins_callback_shows_the_providers_error_description(
    world: dict[str, Any],
) -> None:
    url = _link(world, integration="demo", user_id=world["ids"]["mia"])
    browser = requests.Session()
    to_provider = _start(world, url, browser)
    [state] = parse_qs(urlsplit(to_provider.headers["Location"]).query)["state"]
    query = urlencode({
        "state": state,
        "error": "invalid_scope",
        "error_description": "scope <admin> is not granted to this client",
    })
    page = browser.get(
        f"{world['live'].url}/oauth/callback?{query}", allow_redirects=False, timeout=30
    )
    assert page.status_code == 400
    assert "invalid_scope" in page.text
    assert "scope &lt;admin&gt; is not granted to this client" in page.text  # shown, escaped
    assert _accounts(world) == []


def test_a_members_link_stops_working_once_they_are_removed(world: dict[str, Any]) -> None:
    # A key form's link connected an account for whoever it was made for, member or not:
    # only a sign-in at a provider (its callback) checked that they still were one. So a
    # member removed after the link was made (or opened) still added an account to the
    # facility from it.
    opened_before = _link(world, integration="keyed", user_id=world["ids"]["mia"])
    unopened = _link(world, integration="keyed", user_id=world["ids"]["mia"])
    browser = requests.Session()
    form = _open(world, opened_before, browser)
    removed = _api_call(world, "DELETE", f"/api/f/lab/members/{world['ids']['mia']}")
    assert removed.status_code == 204, removed.text
    posted = _send(world, opened_before, browser, form, api_key=API_KEY)
    assert posted.status_code == 403 and "no longer a member" in posted.text
    fresh = _open(world, unopened, requests.Session())
    assert fresh.status_code == 403 and "no longer a member" in fresh.text
    assert _accounts(world) == []


def _api_call(world: dict[str, Any], method: str, path: str) -> requests.Response:
    live: LiveServer = world["live"]
    return requests.request(
        method, f"{live.url}{path}", headers={"Authorization": f"Bearer {world['token']}"},
        timeout=30,
    )


def test_an_opened_link_expires_too(world: dict[str, Any]) -> None:
    # Once opened, a link was never asked its age again: its browser could send the key
    # form (or reload it) days later, connecting any key to the member's account slot.
    url = _link(world, integration="keyed", user_id=world["ids"]["mia"])
    browser = requests.Session()
    form = _send(world, url, browser, _open(world, url, browser), api_key="")
    assert form.status_code == 400  # the form again, with what was wrong; the link is open
    with world["live"].app.app_context():
        link = db.session.scalars(select(ConnectLink)).one()
        assert link.opened_at is not None
        link.opened_at = utcnow() - LINK_LIFETIME - timedelta(seconds=1)
        link.expires_at = link.opened_at
        db.session.commit()
    posted = _send(world, url, browser, form, api_key=API_KEY)
    assert posted.status_code == 403 and "expired" in posted.text
    assert _open(world, url, browser).status_code == 403
    assert _accounts(world) == []


def test_a_link_opened_in_another_browser_says_so_not_already_used(
    world: dict[str, Any],
) -> None:
    # A link whose button was pressed on the phone, then opened on the laptop, said "This
    # connect link was already used": nothing was connected, and the phone can finish.
    url = _link(world, integration="keyed", user_id=world["ids"]["mia"])
    phone = requests.Session()
    wrong = _send(world, url, phone, _open(world, url, phone), api_key="")
    assert wrong.status_code == 400  # the form again: the link is open in the phone
    laptop = _open(world, url, requests.Session())
    assert laptop.status_code == 403
    assert "opened in another browser: finish connecting there" in laptop.text
    assert "already used" not in laptop.text
    finished = _send(world, url, phone, wrong, api_key=API_KEY)
    assert finished.status_code == 200, finished.text
    [account] = _accounts(world)
    assert account.user_id == world["ids"]["mia"]
    # Once it connected, it is used, for every browser.
    assert "already used" in _open(world, url, requests.Session()).text
    assert "already used" in _open(world, url, phone).text


@pytest.mark.parametrize("integration", ["demo", "keyed"])
def test_a_mail_scanner_fetching_the_link_first_does_not_spend_it(
    world: dict[str, Any], integration: str
) -> None:
    # The first GET bound the link to its browser and, for an OAuth link, started the
    # sign-in: the mail scanner or chat preview that fetches every link in a message
    # before its person clicks it spent the link, and the person got "already used".
    url = _link(world, integration=integration, user_id=world["ids"]["mia"],
                return_to=f"{EMBEDDER}/done")
    for _scanner in range(2):
        page = _open(world, url, requests.Session())
        assert page.status_code == 200 and "Don’t connect" in page.text
    with world["live"].app.app_context():
        link = db.session.scalars(select(ConnectLink)).one()
        assert link.opened_at is None and link.browser_binding is None
    person = requests.Session()
    if integration == "demo":
        back = answer_consent(_start(world, url, person).headers["Location"], approve=True)
        answer = _callback(world, back, person)
    else:
        answer = _send(world, url, person, _open(world, url, person), api_key=API_KEY)
    assert _outcome(answer)["status"] == ["connected"]
    [account] = _accounts(world)
    assert account.user_id == world["ids"]["mia"]


def test_an_oauth_link_asks_the_integrations_parameters_on_its_page(
    world: dict[str, Any],
) -> None:
    live: LiveServer = world["live"]
    with live.app.app_context():
        integrations_admin.create_custom(
            db.session(),
            facility=db.session.scalars(select(Facility).where(Facility.slug == "lab")).one(),
            fields=tenanted_oauth_fields(),
        )
        db.session.commit()
    url = _link(world, integration="tenanted", user_id=world["ids"]["mia"])
    browser = requests.Session()
    page = _open(world, url, browser)
    assert page.status_code == 200 and 'name="param_tenant"' in page.text
    bad = _send(world, url, browser, page, param_tenant="evil.com/x")
    # Said on the form, which the person corrects and sends again.
    assert bad.status_code == 400 and 'role="alert">Tenant has characters' in bad.text
    assert 'name="param_tenant"' in bad.text
    to_provider = _send(world, url, browser, page, param_tenant="acme")
    assert to_provider.status_code == 302
    assert to_provider.headers["Location"].startswith("https://acme.example.com/authorize?")


# GET and DELETE /api/f/<slug>/connect-links/<id>: a link's answer carried an id that no
# endpoint took, so a link made for the wrong user (or no longer wanted) stayed usable until
# it expired, and the app could not ask whether it was used.


def _made(world: dict[str, Any], **body: Any) -> dict[str, Any]:
    answer = _api(world, "/api/f/lab/connect-links", body)
    assert answer.status_code == 201, answer.text
    made: dict[str, Any] = answer.json()
    return made


def _state(world: dict[str, Any], link_id: int) -> dict[str, Any]:
    answer = _api_call(world, "GET", f"/api/f/lab/connect-links/{link_id}")
    assert answer.status_code == 200, answer.text
    state: dict[str, Any] = answer.json()
    return state


def _revoke(world: dict[str, Any], link_id: int) -> requests.Response:
    return _api_call(world, "DELETE", f"/api/f/lab/connect-links/{link_id}")


def _withdrawn(response: requests.Response) -> bool:
    return response.status_code == 403 and "withdrawn by the app that sent it" in response.text


def test_a_links_state_follows_it_from_open_to_used(world: dict[str, Any]) -> None:
    made = _made(world, integration="keyed", user_id=world["ids"]["mia"], label="work")
    url = made["url"]
    first = _state(world, made["id"])
    assert first["state"] == "open" and first["outcome"] is None
    assert first["user_id"] == world["ids"]["mia"] and first["integration"] == "keyed"
    assert first["label"] == "work" and first["expires_at"] == made["expires_at"]
    # Never the link's secret.
    token = urlsplit(url).path.rsplit("/", 1)[1]
    assert "url" not in first and token not in str(first)
    browser = requests.Session()
    form = _send(world, url, browser, _open(world, url, browser), api_key="")
    assert form.status_code == 400  # the form again: the link is open in this browser
    opened = _state(world, made["id"])
    assert opened["state"] == "opened" and opened["opened_at"] is not None
    assert _send(world, url, browser, form, api_key=API_KEY).status_code == 200
    [account] = _accounts(world)
    used = _state(world, made["id"])
    assert used["state"] == "used" and used["outcome"] == "connected"
    assert used["account_id"] == account.id and used["finished_at"] is not None


def test_an_unopened_link_revoked_says_withdrawn_and_binds_nothing(world: dict[str, Any]) -> None:
    made = _made(world, integration="keyed", user_id=world["ids"]["mia"])
    browser = requests.Session()
    page = _open(world, made["url"], browser)  # the page was shown before the revocation
    assert page.status_code == 200
    assert _revoke(world, made["id"]).status_code == 204
    assert _withdrawn(_send(world, made["url"], browser, page, api_key=API_KEY))
    assert _withdrawn(_open(world, made["url"], requests.Session()))
    with world["live"].app.app_context():
        link = db.session.get(ConnectLink, made["id"])
        assert link is not None and link.opened_at is None and link.browser_binding is None
    assert _accounts(world) == []
    state = _state(world, made["id"])
    assert state["state"] == "revoked" and state["revoked_at"] is not None


def test_a_link_revoked_during_its_oauth_sign_in_connects_nothing(world: dict[str, Any]) -> None:
    made = _made(world, integration="demo", return_to=f"{EMBEDDER}/done")
    browser = requests.Session()
    to_provider = open_connect_link(browser, f"{world['live'].url}{urlsplit(made['url']).path}")
    assert to_provider.status_code == 302, to_provider.text
    assert _revoke(world, made["id"]).status_code == 204
    back = answer_consent(to_provider.headers["Location"], approve=True)
    done = _callback(world, back, browser)
    assert _withdrawn(done)
    way_back = _way_back(done)  # withdrawn under way: the same way back as its page's
    assert way_back is not None and way_back == _way_back(_open(world, made["url"], browser))
    assert parse_qs(urlsplit(way_back).query) == {"status": ["revoked"]}
    assert _accounts(world) == []
    assert _withdrawn(_open(world, made["url"], browser))
    assert _state(world, made["id"])["state"] == "revoked"


def test_revoking_a_used_link_is_a_conflict_and_an_expired_one_is_revoked(
    world: dict[str, Any],
) -> None:
    used = _made(world, integration="keyed")
    browser = requests.Session()
    done = _send(world, used["url"], browser, _open(world, used["url"], browser), api_key=API_KEY)
    assert done.status_code == 200, done.text
    conflict = _revoke(world, used["id"])
    assert conflict.status_code == 409, conflict.text
    assert "already used" in conflict.json()["error"]["message"]
    assert _state(world, used["id"])["state"] == "used" and len(_accounts(world)) == 1
    stale = _made(world, integration="keyed")
    with world["live"].app.app_context():
        link = db.session.get(ConnectLink, stale["id"])
        assert link is not None
        link.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert _state(world, stale["id"])["state"] == "expired"
    assert _revoke(world, stale["id"]).status_code == 204
    assert _revoke(world, stale["id"]).status_code == 204  # again: nothing changes
    assert _state(world, stale["id"])["state"] == "revoked"


def test_a_link_is_seen_and_revoked_by_its_user_and_admins_only(world: dict[str, Any]) -> None:
    mia: WebClient = world["mia"]
    adas = _made(world, integration="keyed")
    for method in ("GET", "DELETE"):
        assert mia.api(method, f"/api/f/lab/connect-links/{adas['id']}").status_code == 404
    assert _state(world, adas["id"])["state"] == "open"
    mias = _made(world, integration="keyed", user_id=world["ids"]["mia"])
    seen = mia.api("GET", f"/api/f/lab/connect-links/{mias['id']}")
    assert seen.status_code == 200 and seen.json()["state"] == "open"
    assert mia.api("DELETE", f"/api/f/lab/connect-links/{mias['id']}").status_code == 204
    assert _state(world, mias["id"])["state"] == "revoked"
    # Another facility's link (Ada is no member there), and no link at all: 404.
    with world["live"].app.app_context():
        session = db.session()
        elsewhere = create_facility(session, slug="elsewhere")
        integration = create_integration(session, facility=elsewhere, key="keyed")
        link, _token = issue(
            session,
            facility_id=elsewhere.id,
            user_id=world["ids"]["stranger"],
            integration=integration,
            created_by=None,
            label="",
            return_to=None,
        )
        session.commit()
        other_id = link.id
    for method in ("GET", "DELETE"):
        assert _api_call(world, method, f"/api/f/lab/connect-links/{other_id}").status_code == 404
        assert _api_call(world, method, "/api/f/lab/connect-links/999999").status_code == 404
    with world["live"].app.app_context():
        other = db.session.get(ConnectLink, other_id)
        assert other is not None and other.revoked_at is None
