"""A sign-in's callback URL opened in another browser session ends that sign-in for good
(DESIGN §6: state is single-use and bound to the session): a stolen callback URL cannot be
finished later, in the thief's browser or the starter's, and the starter can sign in again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from app import db
from app.devprovider import answer_consent
from app.models import Account, Grant, Integration, User
from app.models._types import utcnow
from tests.app.web.test_client_rotation import HEADERS, world

__all__ = ["world"]  # the fixture, imported for pytest


def _accounts(world: dict[str, Any]) -> list[Account]:
    with world["live"].app.app_context():
        accounts = list(db.session.scalars(select(Account)))
        db.session.remove()
    return accounts


def test_a_callback_forged_in_another_session_is_spent_and_the_starter_starts_again(
    world: dict[str, Any],
) -> None:
    victim, thief = world["member"], world["admin"]
    started = victim.post("/api/f/lab/integrations/demo/accounts", json={}, headers=HEADERS)
    back = urlsplit(answer_consent(started.get_json()["authorization_url"]))
    stolen = f"{back.path}?{back.query}"

    forged = thief.get(stolen)
    assert forged.status_code == 400
    assert "started in another browser session, so it has been ended" in forged.get_data(
        as_text=True
    )
    late = victim.get(stolen)
    page = late.get_data(as_text=True)
    assert late.status_code == 400
    assert "already used, or opened in another browser session" in page
    assert "start the sign-in again" in page  # what to do next
    assert _accounts(world) == []
    assert world["provider"].stats["code_exchanges"] == 0

    again = victim.post("/api/f/lab/integrations/demo/accounts", json={}, headers=HEADERS)
    back = urlsplit(answer_consent(again.get_json()["authorization_url"]))
    assert victim.get(f"{back.path}?{back.query}").status_code == 200
    assert len(_accounts(world)) == 1


def test_a_prompts_stolen_callback_leaves_the_prompt_to_answer_by_signing_in_again(
    world: dict[str, Any],
) -> None:
    victim, thief = world["member"], world["admin"]
    with world["live"].app.app_context():
        member = db.session.scalar(select(User).where(User.email == "scripter@example.com"))
        demo = db.session.scalar(select(Integration).where(Integration.key == "demo"))
        assert member is not None and demo is not None
        grant = Grant(
            user_id=member.id,
            facility_id=demo.facility_id,
            integration_id=demo.id,
            expires_at=utcnow() + timedelta(minutes=5),
        )
        db.session.add(grant)
        db.session.commit()
        sign_in = f"/f/lab/grants/{grant.id}/sign-in"
        db.session.remove()

    def callback() -> str:
        to_provider = victim.get(sign_in)
        assert to_provider.status_code == 302
        back = urlsplit(answer_consent(to_provider.headers["Location"]))
        return f"{back.path}?{back.query}"

    stolen = callback()
    assert thief.get(stolen).status_code == 400
    late = victim.get(stolen).get_data(as_text=True)
    assert "Go back to Scriptbox and start the sign-in again." in late  # what to do next
    with world["live"].app.app_context():
        assert db.session.get(Grant, grant.id).state == "pending"  # type: ignore[union-attr]
        db.session.remove()
    assert _accounts(world) == []
    assert victim.get(callback()).status_code == 200  # the prompt's Sign in, again
    with world["live"].app.app_context():
        assert db.session.get(Grant, grant.id).state == "granted"  # type: ignore[union-attr]
        db.session.remove()
    assert len(_accounts(world)) == 1
