"""GET /api/f/<slug>/schedules: every schedule of the facility for its scripters and admins
(members 403, another facility's never), soonest first and paused last, shaped as a
script's list's items with the script's name and a state; filters by script, member and
state, refused in words when wrong; pages by cursor; one query per page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app import db
from app.models import Role, Run, Schedule, Script, ScriptVersion
from app.models._types import utcnow
from app.testing import SignedInClient as Browser
from tests.conftest import add_member, create_facility, create_user


@pytest.fixture
def lab(app: Flask) -> dict[str, Any]:
    """lab: admin Ada, scripters Sam and Sue, member Mia, published scripts Report and
    Digest and their schedules, named by what they show (below); other: scripter Oz and a
    schedule due sooner than any of lab's."""
    session = db.session()
    lab, other = create_facility(session, slug="lab"), create_facility(session, slug="other")
    people = {}
    for name, facility, role in (
        ("Ada", lab, Role.admin),
        ("Sam", lab, Role.scripter),
        ("Sue", lab, Role.scripter),
        ("Mia", lab, Role.member),
        ("Oz", other, Role.scripter),
    ):
        people[name] = create_user(session, email=f"{name.lower()}@example.com", name=name)
        add_member(session, user=people[name], facility=facility, role=role)
    scripts = {
        name: Script(facility_id=where.id, name=name, source="result = 1", published=True)
        for name, where in (("Report", lab), ("Digest", lab), ("Theirs", other))
    }
    session.add_all(scripts.values())
    session.flush()
    runs = {
        status: Run(facility_id=lab.id, user_id=people["Sam"].id, source="x = 1", status=status)
        for status in ("queued", "running")
    }
    session.add_all(runs.values())
    session.flush()
    now = utcnow().replace(second=0, microsecond=0)
    hour = timedelta(hours=1)
    made = {}
    for key, script, owner, due, more in (
        ("refused", "Digest", "Sue", now + hour / 6, {"last_skip": "run_refused",
                                                     "last_skip_message": "change its input"}),
        ("active", "Report", "Sam", now + hour, {}),
        ("republished", "Digest", "Sam", now + hour, {"last_skip": "script_unpublished"}),
        ("behind_queued", "Report", "Sam", now + 2 * hour, {
            "last_skip": "previous_run_waiting", "last_run_id": runs["queued"].id}),
        ("behind_started", "Report", "Sam", now + 3 * hour, {
            "last_skip": "previous_run_waiting", "last_run_id": runs["running"].id}),
        ("paused_sue", "Report", "Sue", None, {"enabled": False}),
        ("paused_sam", "Digest", "Sam", None, {"enabled": False, "last_skip": "run_refused"}),
        ("theirs", "Theirs", "Oz", now + hour / 12, {}),
    ):
        schedule = Schedule(
            facility_id=scripts[script].facility_id, script_id=scripts[script].id,
            created_by=people[owner].id, cron="0 9 * * *", timezone="Europe/Berlin",
            next_run_at=due, **more,
        )
        session.add(schedule)
        session.flush()
        made[key] = schedule.id
    session.commit()
    return {
        "ids": {n: u.id for n, u in people.items()},
        "scripts": {n: s.id for n, s in scripts.items()},
        "schedules": made,
    }


# lab's schedules in the list's order: by next due time (a tie by id), then those with
# none (paused) by id.
ORDER = ["refused", "active", "republished", "behind_queued", "behind_started", "paused_sue",
         "paused_sam"]


def listed(app: Flask, lab: dict[str, Any], who: str, query: str = "", slug: str = "lab") -> Any:
    answer = Browser(app, lab["ids"][who]).call("GET", f"/api/f/{slug}/schedules{query}")
    return answer


def names(lab: dict[str, Any], answer: Any) -> list[str]:
    by_id = {schedule_id: key for key, schedule_id in lab["schedules"].items()}
    return [by_id[item["id"]] for item in answer.json]


@pytest.mark.parametrize("who", ["Ada", "Sam", "Sue"])
def test_scripters_and_admins_see_every_schedule_of_their_facility_soonest_first(
    app: Flask, lab: dict[str, Any], who: str
) -> None:
    answer = listed(app, lab, who)
    assert answer.status_code == 200, answer.text
    assert names(lab, answer) == ORDER  # never "theirs", due sooner than all of them
    assert "Next-Cursor" not in answer.headers


def test_a_member_is_refused_and_another_facility_is_not_found(
    app: Flask, lab: dict[str, Any]
) -> None:
    refused = listed(app, lab, "Mia")
    assert refused.status_code == 403
    assert "scripter" in refused.json["error"]["message"]
    stranger = listed(app, lab, "Oz")
    assert stranger.status_code == 404
    assert "Report" not in stranger.text
    theirs = listed(app, lab, "Oz", slug="other")
    assert names(lab, theirs) == ["theirs"]
    assert theirs.json[0]["script_name"] == "Theirs"


def test_each_item_is_a_schedule_with_its_script_owner_and_state(
    app: Flask, lab: dict[str, Any]
) -> None:
    items = {item["id"]: item for item in listed(app, lab, "Ada").json}
    for script in ("Report", "Digest"):  # each script's own list says the same of each
        one = Browser(app, lab["ids"]["Ada"]).call(
            "GET", f"/api/f/lab/scripts/{lab['scripts'][script]}/schedules"
        )
        assert len(one.json) in (3, 4)
        for alone in one.json:
            together = dict(items[alone["id"]])
            assert together.pop("script_name") == script
            together.pop("state")
            assert together == alone
    refused = items[lab["schedules"]["refused"]]
    assert refused["runs_as"] == {"id": lab["ids"]["Sue"], "name": "Sue"}
    assert refused["script_id"] == lab["scripts"]["Digest"]
    assert refused["last_skip"] == {
        "reason": "run_refused", "words": "its input was refused", "message": "change its input"}
    states = {key: items[lab["schedules"][key]]["state"] for key in ORDER}
    assert states == {
        "refused": "skipping",
        "active": "active",
        "republished": "active",  # the script is published again: that skip is past
        "behind_queued": "skipping",
        "behind_started": "active",  # the run it waited behind has started
        "paused_sue": "paused",
        "paused_sam": "paused",  # paused says more than its old skip
    }
    assert items[lab["schedules"]["behind_started"]]["last_skip"] is None
    assert items[lab["schedules"]["behind_queued"]]["last_skip"]["reason"] == (
        "previous_run_waiting"
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?state=active", ["active", "republished", "behind_started"]),
        ("?state=paused", ["paused_sue", "paused_sam"]),
        ("?state=skipping", ["refused", "behind_queued"]),
        ("?script_id={Digest}", ["refused", "republished", "paused_sam"]),
        ("?user_id={Sue}", ["refused", "paused_sue"]),
        ("?user_id={Sue}&state=paused", ["paused_sue"]),
        ("?script_id={Theirs}", []),  # another facility's script: nothing of it shows
        ("?user_id={Oz}", []),
        ("?state=", ORDER),  # an empty filter is none (a form's "any")
    ],
)
def test_filters_by_script_member_and_state(
    app: Flask, lab: dict[str, Any], query: str, expected: list[str]
) -> None:
    answer = listed(app, lab, "Sam", query.format(**lab["ids"], **lab["scripts"]))
    assert answer.status_code == 200, answer.text
    assert names(lab, answer) == expected


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ("?state=broken", "state", "state must be active (runs at its next due time), paused,"),
        ("?state=Paused", "state", "leave it out for every schedule"),
        ("?script_id=abc", "script_id", "script_id must be the id of a script, a whole number"),
        ("?script_id=0", "script_id", "such as 7; leave it out for every script's schedules"),
        ("?user_id=-3", "user_id", "user_id must be the id of the member a schedule runs as"),
        ("?user_id=99999999999999999999", "user_id", "a whole number such as 7"),
        ("?cursor=nonsense", "cursor", "send the Next-Cursor of the previous page"),
        ("?limit=0", "limit", "limit must be a whole number from 1 to 200"),
    ],
)
def test_a_wrong_filter_is_a_400_saying_what_it_takes(
    app: Flask, lab: dict[str, Any], query: str, field: str, words: str
) -> None:
    answer = listed(app, lab, "Ada", query)
    assert answer.status_code == 400, answer.text
    assert answer.json["error"]["field"] == field
    assert words in answer.json["error"]["message"]


@pytest.mark.parametrize(("query", "expected"), [("", ORDER), ("&state=paused", ORDER[-2:])])
def test_pages_follow_each_other_without_gaps_or_repeats(
    app: Flask, lab: dict[str, Any], query: str, expected: list[str]
) -> None:
    seen: list[str] = []
    cursor = ""
    for _page in range(len(ORDER) + 1):
        answer = listed(app, lab, "Ada", f"?limit=2{query}{cursor}")
        assert answer.status_code == 200, answer.text
        assert len(answer.json) <= 2
        seen += names(lab, answer)
        if "Next-Cursor" not in answer.headers:
            break
        assert answer.headers["Link"].endswith('>; rel="next"')
        cursor = f"&cursor={answer.headers['Next-Cursor']}"
    assert seen == expected


def test_a_page_is_one_query_however_many_schedules_it_holds(
    app: Flask, lab: dict[str, Any], statements: list[str]
) -> None:
    ada = Browser(app, lab["ids"]["Ada"])
    counts = []
    for limit in (1, 50):
        statements.clear()
        answer = ada.call("GET", f"/api/f/lab/schedules?limit={limit}")
        assert answer.status_code == 200 and len(answer.json) == min(limit, len(ORDER))
        assert [s for s in statements if "FROM schedules" in s] == statements[-1:]
        counts.append(len(statements))
    assert counts[0] == counts[1]  # no statement per schedule: not its run, script or owner


def test_on_failure_scripts_add_no_query_per_schedule(
    app: Flask, lab: dict[str, Any], statements: list[str]
) -> None:
    """Each schedule's on-failure script and whether a version of it waits for approval
    come with the page's one query: they were two more queries per schedule."""
    session = db.session()
    digest = session.get(Script, lab["scripts"]["Digest"])
    assert digest is not None
    digest.published_version = 1
    session.add(ScriptVersion(script_id=digest.id, number=1, source="result = 1",
                              created_by=lab["ids"]["Sue"]))
    for schedule in session.scalars(select(Schedule)):
        schedule.on_failure_script_id = digest.id
    session.commit()
    ada = Browser(app, lab["ids"]["Ada"])
    counts = []
    for limit in (1, 50):
        statements.clear()
        answer = ada.call("GET", f"/api/f/lab/schedules?limit={limit}")
        assert answer.status_code == 200 and len(answer.json) == min(limit, len(ORDER))
        counts.append(len(statements))
    assert counts[0] == counts[1]
    # Sue's v1 waits for Sam in his schedules; hers are hers.
    sams = {lab["schedules"][k] for k in ("active", "republished", "behind_queued",
                                          "behind_started", "paused_sam")}
    assert {item["id"]: item["on_failure_version_to_approve"] for item in answer.json} == {
        i: 1 if i in sams else None for i in (lab["schedules"][k] for k in ORDER)}


def test_the_document_lists_it_with_its_filters(app: Flask) -> None:
    document = app.test_client().get("/api/openapi.json").json
    operation = document["paths"]["/api/f/{slug}/schedules"]["get"]
    query = {p["name"]: p["schema"] for p in operation["parameters"] if p["in"] == "query"}
    # `_`: the cache-buster every GET takes and ignores (0974950).
    assert set(query) == {"limit", "cursor", "script_id", "user_id", "state", "_"}
    state = next(s for s in query["state"]["anyOf"] if "enum" in s)
    assert state["enum"] == ["active", "paused", "skipping"]
    assert set(operation["responses"]["200"]["headers"]) == {"Next-Cursor", "Link"}
