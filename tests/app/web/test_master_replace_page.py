"""An integration's page offers replacing an active master account in place: a folded
"Replace credentials" form for key modes, "Sign in again" for OAuth, beside Disconnect (a
rotated key used to need a disconnect first, leaving default calls without a master)."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app import db, extensions
from app.models import Account, Facility, Integration, Role
from app.services import connections
from tests.conftest import create_integration, signed_in_lab

CSRF = "csrf"


def _admin_with(app: Flask, **fields: object) -> tuple[FlaskClient, Integration]:
    """An admin of `lab` and its integration `demo` made of `fields`."""
    clients = signed_in_lab(app, roles=[Role.admin], csrf=CSRF)
    lab = db.session.scalar(select(Facility).where(Facility.slug == "lab"))
    assert lab is not None
    integration = create_integration(db.session(), facility=lab, **fields)
    db.session.commit()
    return clients[Role.admin], integration


def _connect_keyed_master(integration: Integration) -> None:
    connections.connect_with_credentials(
        db.session(), integration=integration, owner="master", user_id=None, label="",
        fields={"api_key": "old-key"}, parameters={}, vault=extensions.vault())
    db.session.commit()


def _master_card(page: str) -> str:
    return page[page.index("<h2>Master account</h2>"):page.index("<h2>Test connection</h2>")]


def test_an_active_keyed_master_offers_replacing_its_credentials_in_place(app: Flask) -> None:
    admin, integration = _admin_with(app)
    _connect_keyed_master(integration)
    card = _master_card(admin.get("/f/lab/manage/integrations/demo").get_data(as_text=True))
    assert 'id="disconnect-master"' in card
    folded = re.search(
        r'<details class="replace-master"><summary>Replace credentials</summary>(.*?)</details>',
        card, re.S)
    assert folded is not None, card
    inside = folded.group(1)
    assert "The current credentials stay in use until the new ones are accepted." in inside
    assert re.search(r'<form id="master-credentials".*name="api_key".*>Replace</button>',
                     inside, re.S)
    assert "Add master account" not in card


def test_without_a_master_the_form_adds_one_unfolded(app: Flask) -> None:
    admin, _integration = _admin_with(app)
    card = _master_card(admin.get("/f/lab/manage/integrations/demo").get_data(as_text=True))
    assert "<details" not in card and 'id="disconnect-master"' not in card
    assert re.search(r'<form id="master-credentials".*>Add master account</button>', card, re.S)


def test_a_master_that_must_sign_in_again_is_reconnected_unfolded(app: Flask) -> None:
    admin, integration = _admin_with(app)
    _connect_keyed_master(integration)
    db.session.scalars(select(Account)).one().status = "needs_reauth"
    db.session.commit()
    card = _master_card(admin.get("/f/lab/manage/integrations/demo").get_data(as_text=True))
    assert "<details" not in card and "must sign in again" in card
    assert re.search(r'<form id="master-credentials".*>Reconnect</button>', card, re.S)


def test_an_active_oauth_master_offers_signing_in_again(app: Flask) -> None:
    admin, integration = _admin_with(
        app, auth_mode="oauth2", credential_fields=[], placements=[],
        authorization_url="https://login.example.org/authorize",
        token_url="https://login.example.org/token")
    db.session.add(Account(facility_id=integration.facility_id, integration_id=integration.id,
                           owner_kind="master", label="", status="active"))
    db.session.commit()
    page = admin.get("/f/lab/manage/integrations/demo").get_data(as_text=True)
    card = page[page.index("<h2>Master account</h2>"):page.index("<h2>OAuth setup</h2>")]
    assert 'id="disconnect-master"' in card
    assert re.search(r'<button type="button" id="connect-master"[^>]*>Sign in again</button>', card)
    assert "the current one stays in use until the new sign-in succeeds" in card
    assert "Add master account" not in card
