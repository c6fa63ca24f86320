"""Settings → Integrations says an account whose sign-in the provider no longer accepts in
words, "must sign in again", as the Management page says the master account's: it showed
the stored status, "needs_reauth"."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from app import db
from app.models import Account, Facility, Role, User
from tests.conftest import create_integration, signed_in_lab


def test_an_account_to_sign_in_again_says_so_in_words(app: Flask) -> None:
    member = signed_in_lab(app, roles=[Role.member], csrf="csrf")[Role.member]
    session = db.session()
    lab = session.scalar(select(Facility).where(Facility.slug == "lab"))
    mia = session.scalar(select(User).where(User.email == "member@example.com"))
    assert lab is not None and mia is not None
    keyed = create_integration(session, facility=lab, key="keyed")
    session.flush()
    for label, status in (("work", "needs_reauth"), ("home", "active")):
        session.add(Account(facility_id=lab.id, integration_id=keyed.id, owner_kind="user",
                            user_id=mia.id, label=label, status=status))
    session.commit()
    page = member.get("/settings/integrations").text
    assert '<span class="badge warn">must sign in again</span>' in page
    assert '<span class="badge ok">connected</span>' in page
    assert ">needs_reauth<" not in page  # the badge (the page's wording table names codes)
