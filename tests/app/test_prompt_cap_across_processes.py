"""The open-prompt cap and twin-prompt sharing hold across processes on PostgreSQL
(issue 10, item 5): the user's row is locked while a prompt is counted and opened.

Two app instances on one database stand for two worker processes. The first stops
between counting and inserting until the second has either finished (no lock: it
counted the same prompts, so both open one) or is seen waiting on a lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from app import db, extensions
from app.integrations.call_context import GrantRequest
from app.models import Grant
from sandbox import HostCallError
from tests.conftest import create_facility, create_integration, create_user, make_app


def _request(ids: dict[str, int], label: str) -> GrantRequest:
    return GrantRequest(
        facility_id=ids["facility"], user_id=ids["user"], run_id=None,
        integration_id=ids["integration"], integration_key="demo",
        integration_name="Demo", label=label, reason="missing",
    )


def _race(tmp_path: Path, url: str, labels: tuple[str, str]) -> tuple[list[Any], int]:
    """Open a prompt on process one, held after counting while process two opens its own."""
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = make_app(tmp_path / "one", DATABASE_URL=url, MAX_PENDING_GRANTS_PER_USER=1)
    with one.app_context():
        lab = create_facility(db.session())
        ada = create_user(db.session())
        integration = create_integration(db.session(), facility=lab)
        db.session.commit()
        ids = {"facility": lab.id, "user": ada.id, "integration": integration.id}
    two = make_app(tmp_path / "two", DATABASE_URL=url, MAX_PENDING_GRANTS_PER_USER=1)
    answers: list[Any] = [None, None]
    counted, two_done = threading.Event(), threading.Event()
    holder: list[int] = []

    def hold_once(_session: Session, *_: Any) -> None:
        if holder and holder[0] == threading.get_ident() and not counted.is_set():
            counted.set()
            _await(lambda: two_done.is_set() or _someone_waits_on_a_lock(one))

    event.listen(one.extensions["db_sessionmaker"], "before_flush", hold_once)

    def open_on(which: int, app: Any, label: str) -> None:
        try:
            answers[which] = extensions.grants(app)._open_grant(_request(ids, label))
        except HostCallError as refused:
            answers[which] = refused.details.get("reason", refused.code)
        finally:
            if which == 1:
                two_done.set()

    def first() -> None:
        holder.append(threading.get_ident())
        open_on(0, one, labels[0])

    threads = [threading.Thread(target=first)]
    threads[0].start()
    _await(counted.is_set)
    threads.append(threading.Thread(target=open_on, args=(1, two, labels[1])))
    threads[1].start()
    for thread in threads:
        thread.join(60)
    with one.app_context():
        pending = db.session.scalar(select(func.count(Grant.id)).where(Grant.state == "pending"))
    return answers, int(pending or 0)


def _someone_waits_on_a_lock(app: Any) -> bool:
    with db.session_factory(app)() as session:
        return bool(session.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )))


def _await(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "the race never reached its point"
        time.sleep(0.02)  # polling another process's state: nothing to block on


@pytest.mark.postgres
def test_two_processes_cannot_both_take_the_last_prompt(tmp_path: Path, postgres_url: str) -> None:
    answers, pending = _race(tmp_path, postgres_url, ("first", "second"))
    assert answers[0] == (answers[0][0], True)  # opened
    assert answers[1] == "too_many_prompts"
    assert pending == 1


@pytest.mark.postgres
def test_two_processes_share_one_prompt_for_the_same_account(
    tmp_path: Path, postgres_url: str
) -> None:
    answers, pending = _race(tmp_path, postgres_url, ("same", "same"))
    assert answers[0][1] is True and answers[1] == (answers[0][0], False)  # shared, not twinned
    assert pending == 1
