"""A script's store (`store` in a script): values kept between runs, per script, within
limits a script can catch, seen and deleted through the API, replayed by a resumed run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from app import db, extensions
from app.models import Role, Script, StoreEntry
from app.services import script_store
from app.testing import LiveServer, WebClient
from sandbox import NO_STORE
from tests.app.web.conftest import API_KEY
from tests.app.web.test_parking import World
from tests.conftest import add_member, create_facility, create_user

COUNTER = """
seen = store.get("count", 0)
store.set("count", seen + 1)
store.set("who", {"user": user.name, "seen": [seen]})
result = {"seen": seen, "keys": store.keys()}
"""


class Lab:
    """A served facility `lab` with scripter Sam and member Mia, and facility `other`
    with its admin Oz; each one's browser."""

    def __init__(self, live: LiveServer) -> None:
        self.live = live
        with live.app.app_context():
            session = db.session()
            lab, other = create_facility(session, slug="lab"), create_facility(session,
                                                                               slug="other")
            people = {}
            for name, facility, role in (("sam", lab, Role.scripter), ("mia", lab, Role.member),
                                         ("oz", other, Role.admin)):
                person = create_user(session, email=f"{name}@example.com", name=name.title())
                add_member(session, user=person, facility=facility, role=role)
                people[name] = person.id
            session.commit()
        self.clients = {name: WebClient(live.app, live.url, uid) for name, uid in people.items()}

    def api(self, who: str, method: str, path: str, **kw: Any) -> Any:
        return self.clients[who].api(method, path, **kw)

    def script(self, source: str, *, slug: str = "lab", who: str = "sam") -> int:
        made = self.api(who, "POST", f"/api/f/{slug}/scripts",
                        json={"name": "Poller", "source": source, "published": True})
        assert made.status_code == 201, made.text
        script_id: int = made.json()["id"]
        return script_id

    def run(self, *, who: str = "sam", slug: str = "lab", **body: Any) -> dict[str, Any]:
        started = self.api(who, "POST", f"/api/f/{slug}/runs", json=body)
        assert started.status_code == 201, started.text
        done = extensions.run_queue(self.live.app).wait(started.json()["id"], 60)
        assert done is not None
        return done


@pytest.fixture
def lab(live: LiveServer) -> Lab:
    return Lab(live)


def test_a_value_set_in_one_run_is_read_by_the_next_whoever_runs_it(lab: Lab) -> None:
    script_id = lab.script(COUNTER)
    first = lab.run(script_id=script_id)
    assert first["status"] == "succeeded", first
    assert first["result"] == {"seen": 0, "keys": ["count", "who"]}
    assert first["calls"] == 0  # store calls are no calls to a service
    # A member's run of the published script shares the script's store.
    second = lab.run(who="mia", script_id=script_id)
    assert second["result"]["seen"] == 1, second
    shown = lab.api("sam", "GET", f"/api/f/lab/scripts/{script_id}/store")
    assert shown.status_code == 200
    body = shown.json()
    assert (body["max_keys"], body["max_value_bytes"]) == (100, 65536)
    assert [(e["key"], e["value"], e["size"]) for e in body["entries"]] == [
        ("count", 2, 1), ("who", {"user": "Mia", "seen": [1]}, len('{"user":"Mia","seen":[1]}')),
    ]
    assert all(e["updated_at"] for e in body["entries"])


def test_a_failed_run_keeps_what_it_stored(lab: Lab) -> None:
    script_id = lab.script('store.set("half", "done")\nraise ValueError("later")\n')
    failed = lab.run(script_id=script_id)
    assert failed["status"] == "failed"
    entries = lab.api("sam", "GET", f"/api/f/lab/scripts/{script_id}/store").json()["entries"]
    assert [(e["key"], e["value"]) for e in entries] == [("half", "done")]


LIMITS = """
caught = {}
def attempt(name, do):
    try:
        do()
        caught[name] = "ok"
    except integrations.InvalidRequest as refused:
        caught[name] = [refused.code, str(refused)]
attempt("empty", lambda: store.set("", 1))
attempt("long", lambda: store.get("k" * 201))
attempt("longest", lambda: store.set("k" * 200, 1))
attempt("nul", lambda: store.set("a\\x00b", 1))
attempt("large", lambda: store.set("big", "x" * 65535))
attempt("largest", lambda: store.set("big", "x" * 65534))
attempt("nan", lambda: store.set("n", float("nan")))
for i in range(98):
    store.set("k%d" % i, i)
attempt("101st", lambda: store.set("one more", 1))
attempt("overwrite at 100", lambda: store.set("k0", "again"))
result = caught
"""


def test_limits_are_errors_a_script_can_catch(lab: Lab) -> None:
    script_id = lab.script(LIMITS)
    done = lab.run(script_id=script_id)
    assert done["status"] == "succeeded", done
    caught = done["result"]
    assert caught["longest"] == caught["largest"] == caught["overwrite at 100"] == "ok"
    assert caught["empty"] == ["invalid_request", "a store key must not be empty"]
    assert caught["long"] == [
        "invalid_request", "a store key may be at most 200 characters; this one has 201"]
    assert caught["nul"][1] == "a store key must not hold NUL or half of a surrogate pair"
    assert caught["large"] == [
        "invalid_request", "a stored value may be at most 64 KiB of JSON; this one is 65537"
        " bytes: keep a smaller value, or split it over several keys"]
    assert caught["nan"][1].startswith("a stored value must be JSON: NaN and infinity")
    assert caught["101st"] == [
        "invalid_request", "a script's store keeps at most 100 keys: delete one"
        " (store.delete) before adding another, or keep related values under one key"]
    entries = lab.api("sam", "GET", f"/api/f/lab/scripts/{script_id}/store").json()["entries"]
    assert len(entries) == 100 and "one more" not in {e["key"] for e in entries}


HOSTILE = """
keys = [str(other), "%d:secret" % other, "../%d/secret" % other, "secret' OR '1'='1",
        "secret%", "%", "_ecret", "*", "secret\\\\"]
result = {"seen": [store.get(k) for k in keys], "keys": store.keys()}
"""


def test_another_scripts_store_is_out_of_reach(lab: Lab) -> None:
    other = lab.script('store.set("secret", "sam\'s")\n')
    assert lab.run(script_id=other)["status"] == "succeeded"
    probe = lab.script(f"other = {other}\n" + HOSTILE)
    done = lab.run(script_id=probe)
    assert done["result"] == {"seen": [None] * 9, "keys": []}, done
    # Another facility: its admin's own script sees nothing, and the API is a 404.
    theirs = lab.script(f"other = {other}\n" + HOSTILE, slug="other", who="oz")
    assert lab.run(who="oz", slug="other", script_id=theirs)["result"]["seen"] == [None] * 9
    for method, path in (("GET", f"/api/f/other/scripts/{other}/store"),
                         ("DELETE", f"/api/f/other/scripts/{other}/store"),
                         ("DELETE", f"/api/f/other/scripts/{other}/store/secret")):
        assert lab.api("oz", method, path).status_code == 404, path
    # A member of the facility may run the script but not read or clear its store.
    assert lab.api("mia", "GET", f"/api/f/lab/scripts/{other}/store").status_code == 403
    assert lab.api("mia", "DELETE", f"/api/f/lab/scripts/{other}/store").status_code == 403
    entries = lab.api("sam", "GET", f"/api/f/lab/scripts/{other}/store").json()["entries"]
    assert [(e["key"], e["value"]) for e in entries] == [("secret", "sam's")]


def test_raw_source_has_no_store(lab: Lab) -> None:
    source = """
try:
    store.set("k", 1)
except integrations.InvalidRequest as refused:
    result = str(refused)
"""
    assert lab.run(source=source)["result"] == NO_STORE


def test_the_api_deletes_one_key_or_clears_and_the_script_takes_its_store(lab: Lab) -> None:
    script_id = lab.script('store.set("a/b c", 1)\nstore.set("x", 2)\nstore.set("y", 3)\n')
    lab.run(script_id=script_id)
    base = f"/api/f/lab/scripts/{script_id}/store"
    assert lab.api("sam", "DELETE", base + "/a%2Fb%20c").status_code == 204
    assert lab.api("sam", "DELETE", base + "/a%2Fb%20c").status_code == 404
    assert [e["key"] for e in lab.api("sam", "GET", base).json()["entries"]] == ["x", "y"]
    assert lab.api("sam", "DELETE", base).status_code == 204
    assert lab.api("sam", "GET", base).json()["entries"] == []
    lab.run(script_id=script_id)
    assert lab.api("sam", "DELETE", f"/api/f/lab/scripts/{script_id}").status_code == 204
    with lab.live.app.app_context():
        left = db.session.scalar(select(func.count()).select_from(StoreEntry))
    assert left == 0


def _script_in(app: Flask) -> int:
    session = db.session()
    lab = create_facility(session, slug="lab")
    script = Script(facility_id=lab.id, name="Poller", source="")
    session.add(script)
    session.commit()
    return script.id


def _at_once(app: Flask, writes: list[tuple[str, Any]], script_id: int) -> list[str]:
    """Each write in its own thread and transaction, all let go at the same moment; the
    message of each one refused ("ok" for the others)."""
    gate = threading.Barrier(len(writes))
    outcomes: list[str] = [""] * len(writes)
    factory = db.session_factory(app)

    def write(n: int, key: str, value: Any) -> None:
        gate.wait()
        try:
            with factory() as session, session.begin():
                script_store.write_value(session, script_id=script_id, key=key, value=value)
            outcomes[n] = "ok"
        except script_store.StoreRefused as refused:
            outcomes[n] = refused.message

    threads = [threading.Thread(target=write, args=(n, *w)) for n, w in enumerate(writes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_sets_of_one_key_all_succeed_and_one_wins(app: Flask) -> None:
    script_id = _script_in(app)
    writes = [("cursor", n) for n in range(6)]
    assert _at_once(app, writes, script_id) == ["ok"] * 6
    kept = db.session.scalars(select(StoreEntry).where(StoreEntry.script_id == script_id)).all()
    assert len(kept) == 1 and int(kept[0].value) in range(6)


def test_a_value_is_stored_in_the_size_the_limit_counts(app: Flask) -> None:
    # Stored with non-ASCII escaped (\u00e9, six bytes for one character of two), a value
    # counted within 64 KiB took up to three times that in the database.
    script_id = _script_in(app)
    session = db.session()
    script_store.write_value(session, script_id=script_id, key="accents", value="é" * 32_000)
    session.commit()
    kept = session.scalars(select(StoreEntry).where(StoreEntry.script_id == script_id)).one()
    stored = len(kept.value.encode("utf-8"))
    assert stored == kept.size == 64_002 <= script_store.MAX_VALUE_BYTES
    assert script_store.read_value(session, script_id=script_id, key="accents") == (
        True, "é" * 32_000)
    with pytest.raises(script_store.StoreRefused, match="half of a surrogate pair"):
        script_store.write_value(session, script_id=script_id, key="bad", value="a\ud800b")


def test_concurrent_new_keys_stop_at_the_limit(app: Flask) -> None:
    script_id = _script_in(app)
    with db.session_factory(app)() as session, session.begin():
        for n in range(script_store.MAX_KEYS - 1):
            script_store.write_value(session, script_id=script_id, key=f"k{n}", value=n)
    outcomes = _at_once(app, [(f"new{n}", n) for n in range(4)], script_id)
    assert outcomes.count("ok") == 1, outcomes
    count = db.session.scalar(
        select(func.count()).select_from(StoreEntry).where(StoreEntry.script_id == script_id))
    assert count == script_store.MAX_KEYS


PARKS_AFTER_A_READ = """
seen = store.get("cursor", 0)
store.set("cursor", seen + 1)
print("asking")
status = integrations.get("keyed", "/echo").status
result = {"seen": seen, "now": store.get("cursor"), "status": status}
"""


@pytest.fixture
def parking(tmp_path: Path, keyapi: str) -> Iterator[World]:
    built = World(tmp_path, keyapi)
    yield built
    built.close()


def test_a_resumed_run_replays_its_store_reads_and_writes_nothing_twice(
    parking: World,
) -> None:
    made = parking.client.api("POST", "/api/f/lab/scripts",
                              json={"name": "Poller", "source": PARKS_AFTER_A_READ})
    script_id = made.json()["id"]
    started = parking.client.api("POST", "/api/f/lab/runs",
                                 json={"script_id": script_id, "interactive": True})
    run_id = started.json()["id"]
    prompt = parking.parked(run_id)
    # Another run changes the value while this one is parked.
    factory = db.session_factory(parking.app)
    with parking.app.app_context(), factory() as session, session.begin():
        found = script_store.read_value(session, script_id=script_id, key="cursor")
        assert found == (True, 1)
        script_store.write_value(session, script_id=script_id, key="cursor", value=50)
    parking.client.post_form(prompt["sign_in_url"], {"api_key": API_KEY})
    finished = parking.page.wait_for("run.finished", run_id=run_id)["run"]
    # The replayed read gave what the first pass read (no replay_diverged), its set was
    # not made again (50 stays), and the read after the resume is live.
    assert finished["status"] == "succeeded", finished
    assert finished["result"] == {"seen": 0, "now": 50, "status": 200}
    with parking.app.app_context(), db.session_factory(parking.app)() as session:
        assert script_store.read_value(session, script_id=script_id, key="cursor") == (True, 50)
