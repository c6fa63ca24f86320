"""Every page where a person hands over a credential or is sent to sign in says where it
goes, near the button, before they act (as a browser's address bar says where a page comes
from): an admin sets the integration's origins and may point them at a server of their own.
The grant prompt's sign-in form, the connect link's page, Settings → Integrations and the
master account's form on the integration's page; and the in-page prompt's message."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import db
from app.models import Facility, Grant, Integration, Role, User
from app.models._types import utcnow
from app.services import connect_links, grant_messages
from tests.conftest import create_integration, signed_in_lab

# The admin's server: its port and path say the page shows the origin, not the base URL.
KEY_BASE = "https://keys.example.net:8443/v1/"
UPLOADS = "uploads.example.net"
KEY_WORDS = (
    'What you enter here is sent only to <strong class="wrap-anywhere">'
    'https://keys.example.net:8443</strong> and <strong class="wrap-anywhere">'
    "https://uploads.example.net</strong>."
)
OAUTH_WORDS = (
    'You will sign in at <strong class="wrap-anywhere">https://login.example.org</strong>; '
    'scripts then use the access you grant at <strong class="wrap-anywhere">'
    "https://api.example.org</strong>."
)
CSRF = "csrf"


def _lab(app: Flask) -> tuple[dict[str, FlaskClient], Facility, User]:
    clients = signed_in_lab(app, roles=[Role.member, Role.admin], csrf=CSRF)
    session = db.session()
    lab = session.scalar(select(Facility).where(Facility.slug == "lab"))
    mia = session.scalar(select(User).where(User.email == "member@example.com"))
    assert lab is not None and mia is not None
    return clients, lab, mia


def _keyed(lab: Facility, **fields: object) -> Integration:
    values: dict[str, object] = {"base_url": KEY_BASE, "allowed_hosts": [UPLOADS], **fields}
    return create_integration(db.session(), facility=lab, key="keyed", **values)


def _oauth(lab: Facility, **fields: object) -> Integration:
    values: dict[str, object] = {
        "auth_mode": "oauth2",
        "base_url": "https://api.example.org/v2",
        "authorization_url": "https://login.example.org/oauth/authorize",
        "token_url": "https://login.example.org/oauth/token",
        "credential_fields": [],
        "placements": [],
        **fields,
    }
    return create_integration(db.session(), facility=lab, key="hub", **values)


def _grant(lab: Facility, mia: User, integration: Integration) -> str:
    grant = Grant(user_id=mia.id, facility_id=lab.id, integration_id=integration.id,
                  expires_at=utcnow() + timedelta(minutes=5))
    db.session.add(grant)
    db.session.commit()
    return grant.id


def _near_the_button(page: str, words: str, button: str) -> None:
    """`words` in a paragraph the button names as its description, right before it."""
    found = re.findall(
        r'<p class="secret-destination" id="([^"]+)">([^<]*(?:<strong[^>]*>[^<]*</strong>[^<]*)*)'
        r'</p>\s*<button[^>]*aria-describedby="\1"[^>]*>' + re.escape(button),
        page,
    )
    assert words in [said for _id, said in found], page


def test_the_grant_prompts_key_form_says_where_the_key_goes(app: Flask) -> None:
    clients, lab, mia = _lab(app)
    grant_id = _grant(lab, mia, _keyed(lab))
    page = clients[Role.member].get(f"/f/lab/grants/{grant_id}/sign-in")
    assert page.status_code == 200
    _near_the_button(page.get_data(as_text=True), KEY_WORDS, "Connect")


def test_the_grant_prompts_oauth_form_says_where_the_person_signs_in(app: Flask) -> None:
    clients, lab, mia = _lab(app)
    grant_id = _grant(lab, mia, _oauth(
        lab,
        base_url="https://{tenant}.api.example.org/v2",
        parameters=[{"name": "tenant", "label": "Tenant", "pattern": "^[a-z]+$"}],
    ))
    page = clients[Role.member].get(f"/f/lab/grants/{grant_id}/sign-in")
    assert page.status_code == 200  # the tenant is asked first: shown as the template
    _near_the_button(
        page.get_data(as_text=True),
        OAUTH_WORDS.replace("https://api.", "https://{tenant}.api."),
        "Continue to Hub",
    )


def test_a_form_sent_back_shows_the_origin_with_the_values_typed(app: Flask) -> None:
    clients, lab, mia = _lab(app)
    grant_id = _grant(lab, mia, _keyed(
        lab,
        base_url="https://{tenant}.keys.example.net/v1",
        parameters=[{"name": "tenant", "label": "Tenant", "pattern": "^[a-z]+$"}],
    ))
    member = clients[Role.member]
    before = member.get(f"/f/lab/grants/{grant_id}/sign-in").get_data(as_text=True)
    assert "https://{tenant}.keys.example.net</strong>" in before
    # No key typed: the form comes back with its words, the tenant kept in its field.
    again = member.post(f"/f/lab/grants/{grant_id}/sign-in",
                        data={"csrf_token": CSRF, "param_tenant": "acme", "api_key": ""})
    assert again.status_code == 400
    page = again.get_data(as_text=True)
    assert "https://acme.keys.example.net</strong> and" in page
    assert "{tenant}" not in page
    assert 'name="param_tenant" value="acme"' in page


def _link_page(app: Flask, lab: Facility, mia: User, integration: Integration) -> str:
    _link, token = connect_links.issue(
        db.session(), facility_id=lab.id, user_id=mia.id, integration=integration,
        created_by=mia.id, label="", return_to=None,
    )
    db.session.commit()
    page = app.test_client().get(f"/connect/{token}")
    assert page.status_code == 200
    return page.get_data(as_text=True)


def test_a_connect_links_oauth_button_says_where_the_person_signs_in(app: Flask) -> None:
    _clients, lab, mia = _lab(app)
    page = _link_page(app, lab, mia, _oauth(lab))
    _near_the_button(page, OAUTH_WORDS, "Continue to Hub")


def test_a_connect_links_key_form_says_where_the_key_goes(app: Flask) -> None:
    _clients, lab, mia = _lab(app)
    page = _link_page(app, lab, mia, _keyed(lab))
    _near_the_button(page, KEY_WORDS, "Connect")


def test_settings_integrations_says_where_each_accounts_secret_goes(app: Flask) -> None:
    clients, lab, _mia = _lab(app)
    _keyed(lab)
    _oauth(lab)
    db.session.commit()
    page = clients[Role.member].get("/settings/integrations").get_data(as_text=True)
    _near_the_button(page, KEY_WORDS, "Add account")
    _near_the_button(page, OAUTH_WORDS, "Add account")


def test_the_master_account_form_says_where_the_key_goes(app: Flask) -> None:
    clients, lab, _mia = _lab(app)
    _keyed(lab)
    _oauth(lab)
    db.session.commit()
    admin = clients[Role.admin]
    keyed = admin.get("/f/lab/manage/integrations/keyed").get_data(as_text=True)
    _near_the_button(keyed, KEY_WORDS, "Add master account")
    hub = admin.get("/f/lab/manage/integrations/hub").get_data(as_text=True)
    _near_the_button(hub, OAUTH_WORDS, "Add master account")


def test_the_prompts_message_says_where_sign_in_goes(app: Flask) -> None:
    # The in-page prompt's Sign in goes straight to an OAuth provider: it says where first.
    _clients, lab, mia = _lab(app)
    hub = _grant(lab, mia, _oauth(lab, allowed_hosts=["files.example.org"]))
    keyed = _grant(lab, mia, _keyed(lab))
    assert grant_messages.required_message(db.session(), hub)["destination"] == {
        "sign_in_at": "https://login.example.org",
        "used_at": ["https://api.example.org", "https://files.example.org"],
    }
    assert grant_messages.required_message(db.session(), keyed)["destination"] == {
        "sign_in_at": None,
        "used_at": ["https://keys.example.net:8443", "https://uploads.example.net"],
    }
