"""A sign-in's callback URL opened in another browser session ends that sign-in for good
(DESIGN §6: state is single-use and bound to the session): a stolen callback URL cannot be
finished later, in the thief's browser or the starter's, and the starter can sign in again."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from app import db
from app.devprovider import answer_consent
from app.models import Account
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
