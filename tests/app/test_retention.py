"""Retention (app.services.retention): finished runs, finished webhook deliveries and
expired links past SCRIPTBOX_RETENTION_DAYS are deleted with what hangs on them; runs that
have not finished, pending deliveries, anything newer, and the call log the usage report
still shows are kept; expired sessions and OAuth states go whatever the setting."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from app import db, extensions
from app.config import ConfigError
from app.models import (
    CallLog,
    ConnectLink,
    Grant,
    IdempotencyKey,
    OAuthState,
    Role,
    Run,
    Script,
    TriggerDelivery,
    UserSession,
    WebhookTrigger,
)
from app.models._types import utcnow
from app.models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.services import usage
from app.services.retention import Pruner
from app.testing import signed_in_session
from tests.conftest import (
    add_member,
    create_facility,
    create_integration,
    create_user,
    make_app,
    stop_app,
)

# Now, so that the app's own beat (real clock) sees the same ages as the pruners below.
NOW = utcnow().replace(microsecond=0)
OLD = NOW - timedelta(days=91)
RECENT = NOW - timedelta(days=89)


def pruner(app: Flask, *, days: int = 90, batch: int = 500, now: datetime = NOW) -> Pruner:
    """A pruner of `app`'s database whose clock says `now`."""
    return Pruner(
        session_factory=db.session_factory(app), retention_days=days, clock=lambda: now,
        batch=batch,
    )


def count(model: Any, *where: Any) -> int:
    db.session.expire_all()
    return int(db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def world(session: Any) -> dict[str, Any]:
    """Two facilities' runs, prompts, keys, deliveries, calls, links, sessions and states,
    old and recent; the ids by what should become of them."""
    lab, other = create_facility(session), create_facility(session, slug="other", name="Other")
    ada = create_user(session)
    add_member(session, user=ada, facility=lab, role=Role.admin)
    demo = create_integration(session, facility=lab)
    session.flush()
    runs: dict[str, Run] = {}
    for name, facility, status, created in (
        ("old_done", lab, "succeeded", OLD),
        ("old_failed_other", other, "failed", OLD),
        ("old_parked", lab, "parked", OLD),  # waits for a person: never deleted
        ("old_queued", lab, "queued", OLD),
        ("recent_done", lab, "succeeded", RECENT),
    ):
        runs[name] = Run(facility_id=facility.id, user_id=ada.id, source="x = 1",
                         status=status, created_at=created, output="secret output")
        session.add(runs[name])
    session.flush()
    for name in ("old_done", "recent_done"):
        session.add(Grant(run_id=runs[name].id, user_id=ada.id, facility_id=lab.id,
                          integration_id=demo.id, state="refused", created_at=runs[name].created_at,
                          expires_at=runs[name].created_at + timedelta(minutes=5)))
        session.add(IdempotencyKey(user_id=ada.id, facility_id=lab.id, key=f"key-{name}",
                                   request_hash="0" * 64, run_id=runs[name].id,
                                   created_at=runs[name].created_at))
    # A recent key whose run its member deleted: remembered (a retry is told so) until old.
    session.add(IdempotencyKey(user_id=ada.id, facility_id=lab.id, key="key-deleted",
                               request_hash="0" * 64, run_id=None, created_at=RECENT))
    endpoint = WebhookEndpoint(facility_id=lab.id, url="https://example.com/hook",
                               events=["run.finished"], secret_enc="x")
    session.add(endpoint)
    session.flush()
    deliveries: dict[str, WebhookDelivery] = {}
    for name, status, created in (
        ("old_delivered", "delivered", OLD),
        ("old_failed", "failed", OLD),
        ("old_pending", "pending", OLD),
        ("recent_delivered", "delivered", RECENT),
    ):
        deliveries[name] = WebhookDelivery(endpoint_id=endpoint.id, facility_id=lab.id,
                                           event="run.finished", payload={}, status=status,
                                           created_at=created)
        session.add(deliveries[name])
    session.flush()
    for delivery in deliveries.values():
        session.add(WebhookAttempt(delivery_id=delivery.id, number=1,
                                   started_at=delivery.created_at, response_code=200))
    shown_from = usage.oldest_month(NOW)
    for created in (shown_from - timedelta(seconds=1), shown_from, OLD):
        session.add(CallLog(run_id=runs["old_done"].id, facility_id=lab.id, integration_key="demo",
                            method="GET", path="/me", status=200, created_at=created))
    for name, expires in (("old_link", OLD), ("recent_link", RECENT)):
        session.add(ConnectLink(token_hash=name.ljust(64, "0"), facility_id=lab.id, user_id=ada.id,
                                integration_id=demo.id, expires_at=expires))
    for name, expires in (("expired", NOW - timedelta(seconds=1)),
                          ("live", NOW + timedelta(days=1))):
        session.add(UserSession(id=name.ljust(64, "0"), user_id=ada.id, expires_at=expires))
    for name, expires in (("stale", NOW - timedelta(days=2)), ("late", NOW - timedelta(hours=1))):
        session.add(OAuthState(state_hash=name.ljust(64, "0"), purpose="connect",
                               session_binding="b", user_id=ada.id, facility_id=lab.id,
                               integration_id=demo.id, expires_at=expires))
    session.commit()
    return {"runs": {k: v.id for k, v in runs.items()},
            "deliveries": {k: v.id for k, v in deliveries.items()}}


def test_a_pass_deletes_what_is_past_retention_and_keeps_the_rest(app: Flask) -> None:
    ids = world(db.session())
    pruned = pruner(app).prune()

    runs = ids["runs"]
    assert set(db.session.scalars(select(Run.id))) == {
        runs["old_parked"], runs["old_queued"], runs["recent_done"]
    }
    assert pruned.runs == 2
    # A deleted run's prompts and idempotency key went with it; a kept run's stayed, and
    # so did a recent key of a run deleted by its member.
    assert set(db.session.scalars(select(Grant.run_id))) == {runs["recent_done"]}
    assert set(db.session.scalars(select(IdempotencyKey.key))) == {"key-recent_done",
                                                                   "key-deleted"}
    assert pruned.idempotency_keys == 1
    deliveries = ids["deliveries"]
    assert set(db.session.scalars(select(WebhookDelivery.id))) == {
        deliveries["old_pending"], deliveries["recent_delivered"]
    }
    assert set(db.session.scalars(select(WebhookAttempt.delivery_id))) == {
        deliveries["old_pending"], deliveries["recent_delivered"]
    }
    # The call log stays while the usage report can show its month (longer than 90 days).
    shown_from = usage.oldest_month(NOW)
    assert sorted(db.session.scalars(select(CallLog.created_at))) == [shown_from, OLD]
    assert usage.usage_by_month(db.session, _lab(), months=usage.MAX_MONTHS, now=NOW)[0][
        "total"
    ] == 1
    assert [h[:10] for h in db.session.scalars(select(ConnectLink.token_hash))] == ["recent_lin"]
    assert [s[:4] for s in db.session.scalars(select(UserSession.id))] == ["live"]
    assert [s[:4] for s in db.session.scalars(select(OAuthState.state_hash))] == ["late"]
    assert pruned.total() == 2 + 1 + 2 + 1 + 1 + 1 + 1
    assert pruner(app).prune().total() == 0  # nothing left: a second pass deletes nothing


def _lab() -> Any:
    from app.models import Facility

    return db.session.scalar(select(Facility).where(Facility.slug == "lab"))


def test_retention_0_keeps_history_and_still_clears_expired_sign_ins(app: Flask) -> None:
    world(db.session())
    pruned = pruner(app, days=0).prune()

    assert (pruned.runs, pruned.deliveries, pruned.calls, pruned.connect_links) == (0, 0, 0, 0)
    assert count(Run) == 5 and count(WebhookDelivery) == 4 and count(CallLog) == 3
    assert (pruned.sessions, pruned.oauth_states) == (1, 1)


def test_a_backlog_is_deleted_in_batches_on_the_next_ticks(app: Flask) -> None:
    world(db.session())
    lab, ada_id = _lab(), db.session.scalar(select(Run.user_id).limit(1))
    db.session.add_all(
        Run(facility_id=lab.id, user_id=ada_id, source="", status="succeeded", created_at=OLD)
        for _ in range(5)
    )
    db.session.commit()
    old_finished = count(Run, Run.created_at < NOW - timedelta(days=90),
                         Run.status.in_(("succeeded", "failed")))
    assert old_finished == 7
    moments = iter([NOW, NOW + timedelta(seconds=2), NOW + timedelta(seconds=4),
                    NOW + timedelta(seconds=6), NOW + timedelta(seconds=8)])
    current = {"now": NOW}

    def clock() -> datetime:
        return current["now"]

    ticking = Pruner(session_factory=db.session_factory(app), retention_days=90, clock=clock,
                     batch=2)
    left = []
    for moment in moments:  # a tick every 2 s, as the heartbeat's
        current["now"] = moment
        ticking.tick()
        left.append(count(Run, Run.status.in_(("succeeded", "failed")),
                          Run.created_at < NOW - timedelta(days=90)))
    # Two a tick per facility (lab has 6, other 1), until none is left.
    assert left == [4, 2, 0, 0, 0]
    assert count(Run) == 3  # the parked, the queued and the recent run


def test_after_a_pass_with_nothing_left_the_next_waits(app: Flask) -> None:
    world(db.session())
    current = {"now": NOW}
    ticking = Pruner(session_factory=db.session_factory(app), retention_days=90,
                     clock=lambda: current["now"], every_s=600)
    ticking.tick()
    assert count(Run) == 3
    lab = _lab()
    ada_id = db.session.scalar(select(Run.user_id).limit(1))
    db.session.add(Run(facility_id=lab.id, user_id=ada_id, source="", status="succeeded",
                       created_at=OLD))
    db.session.commit()
    current["now"] = NOW + timedelta(seconds=300)
    ticking.tick()
    assert count(Run) == 4  # within the pause: not looked at
    current["now"] = NOW + timedelta(seconds=601)
    ticking.tick()
    assert count(Run) == 3


def test_a_failing_pass_is_logged_and_does_not_stop_the_tick(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> Any:
        raise RuntimeError("database gone")

    Pruner(session_factory=broken, retention_days=90, clock=lambda: NOW).tick()
    assert "pruning old runs and deliveries failed" in caplog.text


@pytest.mark.parametrize("value", [-1, "ninety", 1.5, True])
def test_a_retention_that_is_not_whole_days_is_refused_at_start(
    tmp_path: Path, value: Any
) -> None:
    with pytest.raises(ConfigError, match="SCRIPTBOX_RETENTION_DAYS"):
        make_app(tmp_path, RETENTION_DAYS=value)


@pytest.mark.parametrize(("days", "said"), [(90, "deleted 90 days after they started"),
                                            (1, "deleted 1 day after they started"), (0, None)])
def test_the_runs_page_says_how_long_runs_are_kept_and_a_deleted_run_says_why_it_is_gone(
    tmp_path: Path, days: int, said: str | None
) -> None:
    app = make_app(tmp_path, RETENTION_DAYS=days)
    with app.app_context():
        ids = world(db.session())
        client = app.test_client()
        ada_id = db.session.scalar(select(Run.user_id).limit(1))
        with client.session_transaction() as cookie:
            cookie.update(signed_in_session(app, ada_id))
        page = client.get("/f/lab/runs")
        assert page.status_code == 200
        manage = client.get("/f/lab/manage")
        assert manage.status_code == 200
        if said is None:
            assert 'id="retention-note"' not in page.text
            assert "The log keeps a delivery" not in manage.text
        else:
            assert said in page.text
            assert f"The log keeps a delivery {days} day" in manage.text
        extensions.heartbeat(app).sweep()  # the beat's tick prunes (nothing at 0 days)
        gone = client.get(f"/api/f/lab/runs/{ids['runs']['old_done']}")
        if said is None:
            assert gone.status_code == 200
        else:
            assert gone.status_code == 404
            assert "old finished runs are deleted" in gone.json["error"]["message"]
        db.session.remove()
    stop_app(app)


def test_a_pass_looks_at_so_many_facilities_and_the_next_tick_at_the_rest(app: Flask) -> None:
    world(db.session())  # lab (old runs: 1 finished) and other (1 finished)
    third = create_facility(db.session(), slug="third", name="Third")
    ada_id = db.session.scalar(select(Run.user_id).limit(1))
    db.session.add(Run(facility_id=third.id, user_id=ada_id, source="", status="failed",
                       created_at=OLD))
    db.session.commit()
    current = {"now": NOW}
    ticking = Pruner(session_factory=db.session_factory(app), retention_days=90,
                     clock=lambda: current["now"], facilities_per_pass=2)

    def old_finished() -> int:
        return count(Run, Run.created_at < NOW - timedelta(days=90),
                     Run.status.in_(("succeeded", "failed")))

    assert old_finished() == 3
    ticking.tick()
    assert old_finished() == 1  # lab's and other's; third is left for the next tick
    current["now"] = NOW + timedelta(seconds=2)
    ticking.tick()
    assert old_finished() == 0
    db.session.add(Run(facility_id=third.id, user_id=ada_id, source="", status="failed",
                       created_at=OLD))
    db.session.commit()
    current["now"] = NOW + timedelta(seconds=4)
    ticking.tick()  # every facility was looked at: the next pass waits its 10 minutes
    assert old_finished() == 1


def test_a_webhooks_delivery_ids_are_kept_as_idempotency_keys(app: Flask) -> None:
    """Kept while their run is; once it is deleted, until they are past retention."""
    session = db.session()
    lab = create_facility(session)
    ada = create_user(session)
    add_member(session, user=ada, facility=lab, role=Role.admin)
    script = Script(facility_id=lab.id, name="Echo", source="x = 1", published=True)
    session.add(script)
    session.flush()
    trigger = WebhookTrigger(facility_id=lab.id, script_id=script.id, owner_id=ada.id,
                             name="GitHub", token_hash="t" * 64)
    kept_run = Run(facility_id=lab.id, user_id=ada.id, source="x = 1", status="succeeded",
                   created_at=RECENT, output="")
    session.add_all([trigger, kept_run])
    session.flush()
    for name, run_id, created in (("old_gone", None, OLD), ("recent_gone", None, RECENT),
                                  ("old_kept_run", kept_run.id, OLD)):
        session.add(TriggerDelivery(trigger_id=trigger.id, delivery_id=name, run_id=run_id,
                                    created_at=created))
    session.commit()
    pruned = pruner(app).prune()
    assert set(db.session.scalars(select(TriggerDelivery.delivery_id))) == {
        "recent_gone", "old_kept_run"}
    assert pruned.trigger_deliveries == 1
