"""A webhook delivery's states as the sender moves it: a first failure is "retrying" with
its next attempt due after the backoff; a success after retries is "delivered"; running out
of attempts is "failed". "retrying" is derived (a pending delivery already tried), so the
sender's claim, which matches the stored "pending", keeps a retry from being sent twice.
A real loopback listener is the receiver; on each database the tests run on.
"""

from __future__ import annotations

import socket
import threading
from datetime import datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import update
from sqlalchemy.orm import Session

from app import db
from app.models import WebhookDelivery, WebhookEndpoint
from app.models._types import utcnow
from app.models.webhooks import WebhookAttempt
from app.services import webhook_deliveries, webhook_sending
from tests.listener import Answer, Listener
from tests.webhook_world import attempt, pending_delivery, read_delivery

BACKOFF = webhook_sending.RetryPolicy(max_attempts=3, base_s=30.0)


@pytest.fixture
def delivery_id(app: Flask, session: Session, listener: Listener) -> str:
    """A run.finished delivery for the listener, not tried yet."""
    return pending_delivery(app, session, listener.url)


def _attempt(
    app: Flask, delivery_id: str, policy: webhook_sending.RetryPolicy = BACKOFF
) -> str | None:
    return attempt(app, delivery_id, policy)


def _due_now(app: Flask, delivery_id: str) -> None:
    """The backoff has passed (instead of waiting it out)."""
    with db.session_factory(app)() as fresh, fresh.begin():
        fresh.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


def _between(value: datetime | None, low: datetime, high: datetime) -> bool:
    return value is not None and low <= value <= high


def test_a_delivery_not_tried_yet_is_pending(app: Flask, delivery_id: str) -> None:
    found = read_delivery(app, delivery_id)
    assert (found.status, found.shown_status, found.attempts) == ("pending", "pending", 0)
    assert found.response_code is None and found.last_error is None


def test_a_first_failure_is_retrying_with_its_next_attempt_after_the_backoff(
    app: Flask, delivery_id: str, listener: Listener
) -> None:
    listener.answer_with(503)
    before = utcnow()
    assert _attempt(app, delivery_id) == "pending"  # stored: the claim still matches it
    after = utcnow()
    assert listener.next().status == 503
    found = read_delivery(app, delivery_id)
    assert (found.shown_status, found.attempts, found.response_code) == ("retrying", 1, 503)
    assert found.last_error == "answered HTTP 503"
    assert _between(found.next_attempt_at, before + BACKOFF.delay(1), after + BACKOFF.delay(1))
    assert found.delivered_at is None
    # Not before its time: no sweep lists it and no claim takes it.
    with db.session_factory(app)() as fresh:
        assert delivery_id not in webhook_sending.due(fresh)
    assert _attempt(app, delivery_id) is None
    assert listener.received.empty()
    # Its time come, it is due again, and the next failure waits twice as long.
    _due_now(app, delivery_id)
    with db.session_factory(app)() as fresh:
        assert webhook_sending.due(fresh) == [delivery_id]
    listener.answer_with(500)
    before = utcnow()
    assert _attempt(app, delivery_id) == "pending"
    found = read_delivery(app, delivery_id)
    assert (found.shown_status, found.attempts, found.response_code) == ("retrying", 2, 500)
    assert _between(
        found.next_attempt_at, before + BACKOFF.delay(2), utcnow() + BACKOFF.delay(2)
    )
    assert BACKOFF.delay(2) == 2 * BACKOFF.delay(1)


def test_no_answer_is_retrying_with_the_reason_in_words(app: Flask, delivery_id: str) -> None:
    with db.session_factory(app)() as fresh, fresh.begin():
        delivery = fresh.get(WebhookDelivery, delivery_id)
        assert delivery is not None
        endpoint = fresh.get(WebhookEndpoint, delivery.endpoint_id)
        assert endpoint is not None
        endpoint.url = f"http://127.0.0.1:{_closed_port()}/hook"
    assert _attempt(app, delivery_id) == "pending"
    found = read_delivery(app, delivery_id)
    assert (found.shown_status, found.attempts, found.response_code) == ("retrying", 1, None)
    assert found.last_error == "could not connect to 127.0.0.1: check that the receiver is running"
    assert found.next_attempt_at is not None


def test_a_success_after_retries_is_delivered(
    app: Flask, delivery_id: str, listener: Listener
) -> None:
    listener.answer_with(503, 500, 200)
    assert _attempt(app, delivery_id) == "pending"
    _due_now(app, delivery_id)
    assert _attempt(app, delivery_id) == "pending"
    _due_now(app, delivery_id)
    assert _attempt(app, delivery_id) == "delivered"
    assert [listener.next().status for _ in range(3)] == [503, 500, 200]
    found = read_delivery(app, delivery_id)
    assert (found.status, found.shown_status, found.attempts) == ("delivered", "delivered", 3)
    assert found.response_code == 200 and found.last_error is None
    assert found.next_attempt_at is None and found.delivered_at is not None
    # Done: nothing lists or sends it again.
    with db.session_factory(app)() as fresh:
        assert webhook_sending.due(fresh) == []
    assert _attempt(app, delivery_id) is None
    assert listener.received.empty()


def test_running_out_of_attempts_is_failed(
    app: Flask, delivery_id: str, listener: Listener
) -> None:
    listener.answer_with(503, 502, 504)
    for _ in range(BACKOFF.max_attempts - 1):
        assert _attempt(app, delivery_id) == "pending"
        _due_now(app, delivery_id)
    assert _attempt(app, delivery_id) == "failed"
    found = read_delivery(app, delivery_id)
    assert (found.status, found.shown_status, found.attempts) == ("failed", "failed", 3)
    assert found.response_code == 504 and found.last_error == "answered HTTP 504"
    assert found.next_attempt_at is None and found.delivered_at is None
    assert found.attempts_allowed(BACKOFF.max_attempts) == 3
    _due_now(app, delivery_id)  # even with a time set by hand, a failed one is left alone
    with db.session_factory(app)() as fresh:
        assert webhook_sending.due(fresh) == []
    assert _attempt(app, delivery_id) is None
    assert [listener.next().status for _ in range(3)] == [503, 502, 504]
    assert listener.received.empty()


def test_a_retry_in_flight_is_not_claimed_twice(
    app: Flask, delivery_id: str, listener: Listener
) -> None:
    # A retry is due: two senders (a sweep in each of two processes) reach for it at once.
    listener.answer_with(500)
    assert _attempt(app, delivery_id) == "pending"
    listener.next()
    _due_now(app, delivery_id)
    release = threading.Event()
    listener.answers.append(Answer(200, release=release))
    outcome: list[str | None] = []
    first = threading.Thread(target=lambda: outcome.append(_attempt(app, delivery_id)))
    first.start()
    try:
        assert listener.next().status == 200  # the first holds the claim, its answer held
        # Meanwhile it still reads "retrying", its next attempt the claim's lease.
        found = read_delivery(app, delivery_id)
        assert (found.shown_status, found.attempts) == ("retrying", 1)
        assert found.next_attempt_at is not None and found.next_attempt_at > utcnow()
        assert _attempt(app, delivery_id) is None
        # The lease is no next attempt: what the log shows is since when one is in flight.
        with db.session_factory(app)() as fresh:
            delivery = fresh.get(WebhookDelivery, delivery_id)
            assert delivery is not None
            [(sending, since)] = webhook_deliveries.in_flight(fresh, [delivery]).items()
            assert sending == delivery_id and since <= utcnow()
    finally:
        release.set()
        first.join(60)
    assert outcome == ["delivered"]
    assert listener.received.empty()  # sent once
    assert read_delivery(app, delivery_id).attempts == 2


@pytest.mark.parametrize(
    ("status", "attempts", "limit", "shown", "allowed"),
    [
        ("pending", 0, 8, "pending", 8),
        ("pending", 3, 8, "retrying", 8),
        # A limit lowered below its attempts: a pending one still gets its next (the sender
        # then ends it), so "attempt 6 of 6", never "of 2".
        ("pending", 5, 2, "retrying", 6),
        ("delivered", 1, 8, "delivered", 8),
        ("delivered", 3, 2, "delivered", 3),
        # It got what it had when it gave up, whatever the limit says now.
        ("failed", 8, 8, "failed", 8),
        ("failed", 8, 10, "failed", 8),
    ],
)
def test_shown_status_and_attempts_allowed(
    status: str, attempts: int, limit: int, shown: str, allowed: int
) -> None:
    delivery = WebhookDelivery(status=status, attempts=attempts)
    assert delivery.shown_status == shown
    assert delivery.attempts_allowed(limit) == allowed


def _closed_port() -> int:
    with socket.socket() as probe:  # bound, never listening: a connection is refused
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _attempts(app: Flask, delivery_id: str) -> list[tuple[int, int | None, str | None, bool]]:
    """(number, response code, error, has a duration) of each attempt, first first."""
    with db.session_factory(app)() as fresh:
        return [
            (a.number, a.response_code, a.error, a.duration_ms is not None)
            for a in webhook_deliveries.attempts_of(fresh, delivery_id)
        ]


def test_each_attempt_is_written_with_its_outcome(
    app: Flask, delivery_id: str, listener: Listener
) -> None:
    listener.answer_with(503)
    assert _attempt(app, delivery_id) == "pending"
    with db.session_factory(app)() as fresh, fresh.begin():  # the receiver goes away
        delivery = fresh.get(WebhookDelivery, delivery_id)
        assert delivery is not None
        endpoint = fresh.get(WebhookEndpoint, delivery.endpoint_id)
        assert endpoint is not None
        good_url, endpoint.url = endpoint.url, f"http://127.0.0.1:{_closed_port()}/hook"
    _due_now(app, delivery_id)
    assert _attempt(app, delivery_id) == "pending"
    with db.session_factory(app)() as fresh, fresh.begin():
        endpoint = fresh.get(WebhookEndpoint, read_delivery(app, delivery_id).endpoint_id)
        assert endpoint is not None
        endpoint.url = good_url
    _due_now(app, delivery_id)
    assert _attempt(app, delivery_id) == "delivered"
    assert _attempts(app, delivery_id) == [
        (1, 503, "answered HTTP 503", True),
        (2, None, "could not connect to 127.0.0.1: check that the receiver is running", True),
        (3, 200, None, True),
    ]
    with db.session_factory(app)() as fresh:
        assert webhook_deliveries.in_flight(fresh, [read_delivery(app, delivery_id)]) == {}


def test_an_attempt_whose_sender_never_reported_is_closed_and_counted(
    app: Flask, delivery_id: str, listener: Listener
) -> None:
    # A sender claimed it and stopped (its process was killed) before the outcome: the
    # attempt's row stays open and the lease passes.
    with db.session_factory(app)() as fresh, fresh.begin():
        fresh.add(WebhookAttempt(delivery_id=delivery_id, number=1, started_at=utcnow()))
    _due_now(app, delivery_id)
    assert _attempt(app, delivery_id) == "delivered"
    assert listener.next().status == 200
    assert _attempts(app, delivery_id) == [
        (1, None, webhook_sending.UNREPORTED, False),
        (2, 200, None, True),
    ]
    assert read_delivery(app, delivery_id).attempts == 2


def test_a_paused_endpoints_pending_delivery_waits_until_it_is_resumed(
    app: Flask, delivery_id: str, listener: Listener
) -> None:
    endpoint_id = read_delivery(app, delivery_id).endpoint_id

    def set_active(active: bool) -> None:
        with db.session_factory(app)() as fresh, fresh.begin():
            endpoint = fresh.get(WebhookEndpoint, endpoint_id)
            assert endpoint is not None
            endpoint.active = active

    set_active(False)
    with db.session_factory(app)() as fresh:
        assert webhook_sending.due(fresh) == []
    assert _attempt(app, delivery_id) is None
    found = read_delivery(app, delivery_id)
    assert (found.status, found.attempts) == ("pending", 0)  # waiting, nothing spent
    assert listener.received.empty()
    set_active(True)
    with db.session_factory(app)() as fresh:
        assert webhook_sending.due(fresh, endpoint_id=endpoint_id) == [delivery_id]
    assert _attempt(app, delivery_id) == "delivered"
    assert listener.next().status == 200
