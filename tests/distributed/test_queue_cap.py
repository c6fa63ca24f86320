"""The cap on a user's queued runs in the scale-out (migration 0022): web processes adding
runs at once on PostgreSQL never queue more than the cap, each counting after an advisory
lock on the user. The inserts race from threads of one Celery-mode app, each on its own
connection, as several web processes would; no worker runs, so every run stays queued.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from app import db
from app.errors import TooManyQueuedRuns
from app.models import Role, Run
from app.services.context import MemberContext
from app.services.scripts import create_run
from tests.conftest import add_member, create_facility, create_user, stop_app
from tests.distributed.conftest import celery_app

pytestmark = pytest.mark.postgres
CAP = 2
RACERS = 8


@pytest.fixture
def app(tmp_path: Path, postgres_url: str, redis_prefix: str) -> Iterator[Flask]:
    application = celery_app(tmp_path, postgres_url, redis_prefix, MAX_QUEUED_RUNS_PER_USER=CAP)
    yield application
    stop_app(application)


def test_runs_added_at_once_never_pass_the_queued_cap(app: Flask) -> None:
    with app.app_context():
        session = db.session()
        user, facility = create_user(session), create_facility(session)
        add_member(session, user=user, facility=facility, role=Role.scripter)
        session.commit()
        ids = (user.id, facility.id)
    db.session.remove()
    factory = db.session_factory(app)
    gate = threading.Barrier(RACERS)
    outcomes: list[str] = []

    def add() -> None:
        with factory() as session:
            member = MemberContext(
                session.get_one(type(user), ids[0]),
                session.get_one(type(facility), ids[1]),
                Role.scripter,
            )
            gate.wait()
            try:
                create_run(
                    session,
                    member,
                    script_id=None,
                    source="result = 1",
                    run_input=None,
                    interactive=False,
                    max_queued=int(app.config["MAX_QUEUED_RUNS_PER_USER"]),
                )
                session.commit()
                outcomes.append("queued")
            except TooManyQueuedRuns:
                session.rollback()
                outcomes.append("refused")

    threads = [threading.Thread(target=add) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["queued"] * CAP + ["refused"] * (RACERS - CAP)
    with factory() as session:
        assert session.scalar(select(func.count(Run.id))) == CAP
