"""The call log keeps a call's own duration apart from the wait for a person to sign in."""

from __future__ import annotations

import time

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import extensions, sandboxes
from app.integrations.call_context import GrantRequest, RunContext
from app.models import CallLog, Integration
from app.services import connections, integrations_admin
from app.testing import signed_in_session
from sandbox import Limits
from tests.app.integrations.conftest import PLAIN_KEY, RealProvider
from tests.conftest import add_member, create_facility, create_user, keyed_api_fields

SIGN_IN_TAKES_S = 300.0
CSRF = "csrf-token"


class ShiftableClock:
    """perf_counter plus an offset the test moves forward: a sign-in that 'takes' minutes."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.perf_counter() + self.offset


def test_the_wait_for_a_sign_in_is_logged_apart_from_the_calls_duration(
    app: Flask, session: Session, provider: RealProvider
) -> None:
    lab = create_facility(session, slug="lab")
    ada = create_user(session)
    add_member(session, user=ada, facility=lab, role="admin")
    integration = integrations_admin.create_custom(
        session,
        facility=lab,
        fields=keyed_api_fields(provider.url, name="Keyed"),
    )
    session.commit()
    clock = ShiftableClock()

    def person_signs_in(request: GrantRequest) -> int:
        clock.offset += SIGN_IN_TAKES_S  # the person took five minutes to sign in
        account = connections.connect_with_credentials(
            session,
            integration=session.get(Integration, integration.id),
            owner="user",
            user_id=ada.id,
            label="",
            fields={"api_key": PLAIN_KEY},
            parameters={},
            vault=extensions.vault(),
        )
        session.commit()
        return account.id

    broker = extensions.build_broker(
        app, vault=extensions.vault(app), grant_hook=person_signs_in, clock=clock
    )
    outcome = sandboxes.executor(app).run(
        'result = integrations.get("keyed", "/echo").status\n'
        'result = [result, integrations.get("keyed", "/echo").status]',
        input=None,
        on_call=broker.handler(RunContext(facility_id=lab.id, user_id=ada.id, run_id=None)),
        limits=Limits(wall_time_s=20),
    )
    broker.flush()
    assert outcome.result == [200, 200]
    first, second = session.scalars(select(CallLog).order_by(CallLog.id)).all()
    assert first.wait_ms is not None and first.wait_ms >= SIGN_IN_TAKES_S * 1000
    assert first.duration_ms is not None and 0 <= first.duration_ms < SIGN_IN_TAKES_S * 1000
    assert second.wait_ms is None  # the account existed by then: nobody was asked

    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie.update({**signed_in_session(app, ada.id), "csrf": CSRF})
    listed = client.get("/api/f/lab/calls").get_json()
    assert [(row["wait_ms"], row["duration_ms"]) for row in reversed(listed)] == [
        (first.wait_ms, first.duration_ms),
        (None, second.duration_ms),
    ]
