"""A script's store in a real cluster (DESIGN §7): a value one Celery worker's run kept is
read by the next run on another worker process, on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from app.models import Role, Script
from app.testing import WebClient
from tests.conftest import add_member, create_facility, create_user
from tests.distributed.cluster import Cluster, seeded_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]
SECRET_KEY = "cluster-store-session-key"
COUNTER = 'seen = store.get("count", 0)\nstore.set("count", seen + 1)\nresult = seen\n'


def seed(session: Session) -> tuple[int, int]:
    """Facility lab, its scripter (the first id) and a published script that counts its
    runs in its store (the second)."""
    facility = create_facility(session, slug="lab")
    user = create_user(session, email="sam@example.com")
    add_member(session, user=user, facility=facility, role=Role.scripter)
    script = Script(facility_id=facility.id, name="Counter", source=COUNTER, published=True)
    session.add(script)
    session.flush()
    return user.id, script.id


@pytest.fixture
def world(tmp_path: Path, postgres_url: str, redis_prefix: str) -> Iterator[
        tuple[Flask, tuple[int, int], Cluster]]:
    with seeded_cluster(tmp_path, postgres_url, redis_prefix, SECRET_KEY, seed) as built:
        yield built


def run(browser: WebClient, script_id: int) -> dict[str, Any]:
    answer = browser.api("POST", "/api/f/lab/runs", json={"script_id": script_id, "wait": 60})
    assert answer.status_code == 200, answer.text  # ended within `wait`
    done: dict[str, Any] = answer.json()
    return done


def test_a_value_kept_on_one_worker_is_read_on_another(
    world: tuple[Flask, tuple[int, int], Cluster],
) -> None:
    app, (user_id, script_id), cluster = world
    _web, url = cluster.web()
    first = cluster.worker()
    browser = WebClient(app, url, user_id)
    assert run(browser, script_id)["result"] == 0
    first.kill()  # the next run cannot be on it
    cluster.worker()
    again = run(browser, script_id)
    assert again["status"] == "succeeded", again
    assert again["result"] == 1
    stored = browser.api("GET", f"/api/f/lab/scripts/{script_id}/store").json()["entries"]
    assert [(entry["key"], entry["value"]) for entry in stored] == [("count", 2)]
