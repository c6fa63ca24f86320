"""Pages put runs into words by app/web/wording.py: the templates' status badges, and the
table each page carries for its scripts (static/js/wording.js has no copy of its own)."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app import db
from app.lifecycle import RunStatus
from app.models import CallLog, Facility, Role, Run, User
from app.services.run_filters import TRIGGERS
from app.web.wording import (
    CALL_ERROR_WORDS,
    NOT_RUN,
    STATUS_WORDS,
    TRIGGER_MARKS,
    for_the_browser,
    status_in_words,
)
from sandbox.script_api import IntegrationError
from tests.conftest import signed_in_lab


def test_each_page_carries_the_servers_wording_table(app: Flask) -> None:
    member = signed_in_lab(app, roles=[Role.member], csrf="csrf")[Role.member]
    for path in ("/f/lab/scripts", "/f/lab/runs", "/settings/integrations"):
        page = member.get(path).text
        found = re.search(r"<meta name=\"run-wording\" content='([^']*)'>", page)
        assert found is not None, path
        carried = json.loads(html.unescape(found.group(1)))
        assert carried == for_the_browser("/settings/integrations"), path
        assert carried["status_words"]["waiting_for_grant"] == "waiting for sign-in"
        assert carried["status_tones"]["timed_out"] == "bad"


def test_every_status_has_peoples_words() -> None:
    """One entry per status, none of them the API's value with its underscores ("waiting
    for grant" was an engineer's word for a run waiting for someone to sign in)."""
    assert set(STATUS_WORDS) == {str(status) for status in RunStatus} | {NOT_RUN}
    assert all("_" not in words and "grant" not in words for words in STATUS_WORDS.values())
    assert status_in_words("waiting_for_grant") == "waiting for sign-in"
    assert status_in_words("some_new_state") == "some new state"  # a newer server's


def test_every_trigger_has_its_mark() -> None:
    """The lists' mark for each RunTrigger: "on_failure" showed as it is stored."""
    assert set(TRIGGER_MARKS) == set(TRIGGERS)
    assert all("_" not in mark for mark in TRIGGER_MARKS.values())
    assert TRIGGER_MARKS["manual"] == ""


def admins_run(app: Flask, **fields: str) -> tuple[Any, Run]:
    """The admin of lab, signed in, and a run of theirs with these fields."""
    admin = signed_in_lab(app, roles=[Role.admin], csrf="csrf")[Role.admin]
    session = db.session()
    lab = session.scalar(select(Facility).where(Facility.slug == "lab"))
    ada = session.scalar(select(User).where(User.email == "admin@example.com"))
    assert lab is not None and ada is not None
    run = Run(facility_id=lab.id, user_id=ada.id, source="result = 1", **fields)
    session.add(run)
    session.commit()
    return admin, run


@pytest.mark.parametrize(
    ("status", "tone", "words"),
    [
        ("succeeded", "ok", "succeeded"),
        ("timed_out", "bad", "timed out"),
        ("cancelled", "bad", "cancelled"),
        ("waiting_for_grant", "warn", "waiting for sign-in"),
        ("parked", "warn", "parked"),
        ("running", "", "running"),
    ],
)
def test_a_runs_status_badge_in_words_and_tone(
    app: Flask, status: str, tone: str, words: str
) -> None:
    admin, run = admins_run(app, status=status)
    badge = f'<span class="badge run-status {tone}">{words}</span>'
    assert badge in admin.get("/f/lab/runs").text  # the list's row
    own = admin.get(f"/f/lab/runs/{run.id}").text
    assert f'class="badge run-status {tone}">{words}</span>' in own  # the run's page


@pytest.mark.parametrize(
    ("trigger", "mark", "words"),
    [
        ("manual", None, "Manual (page or API)"),
        ("schedule", "(schedule)", "Schedule"),
        ("terminal", "(terminal)", "Terminal (scriptbox run)"),
        # Not "a schedule's run failed": a webhook trigger's failed run starts one too.
        ("on_failure", "(on failure)", "On failure (a scheduled or webhook run failed)"),
    ],
)
def test_what_started_a_run_in_words(
    app: Flask, trigger: str, mark: str | None, words: str
) -> None:
    """The runs list marks a run a person or the API did not start; its page names it."""
    admin, run = admins_run(app, trigger=trigger)
    listed = admin.get("/f/lab/runs").text
    marks = re.findall(r'<span class="muted run-trigger">([^<]*)</span>', listed)
    assert marks == ([mark] if mark else [])
    own = admin.get(f"/f/lab/runs/{run.id}").text
    said = re.search(r'<dd id="run-trigger">([^<]*)</dd>', own)
    assert said is not None and html.unescape(said.group(1)) == words


def test_every_integration_error_has_words_for_the_calls_table() -> None:
    """The call table's Status for a call that got no HTTP status: one for each code a
    script's integration call can fail with."""
    codes = {IntegrationError.code} | {cls.code for cls in IntegrationError.__subclasses__()}
    assert set(CALL_ERROR_WORDS) == codes
    assert all("_" not in words for words in CALL_ERROR_WORDS.values())


def test_a_members_run_page_says_its_calls_in_words(app: Flask) -> None:
    """Status and Account of each call in people's words: the member read
    `no_integration_grant` and `user`/`master` before."""
    clients = signed_in_lab(app, roles=[Role.member, Role.admin], csrf="csrf")
    session = db.session()
    lab = session.scalar(select(Facility).where(Facility.slug == "lab"))
    mia = session.scalar(select(User).where(User.email == "member@example.com"))
    assert lab is not None and mia is not None
    run = Run(facility_id=lab.id, user_id=mia.id, source="result = 1", status="failed")
    session.add(run)
    session.flush()
    for kind, status, code in [
        ("master", 200, None),
        ("user", 201, None),
        ("label:lab notebook", 204, None),
        (None, None, "no_integration_grant"),
    ]:
        session.add(
            CallLog(
                run_id=run.id,
                facility_id=lab.id,
                user_id=mia.id,
                integration_key="demo",
                account_kind=kind,
                method="GET",
                path="/me",
                status=status,
                error_code=code,
            )
        )
    session.commit()

    def cells(page: str, label: str) -> list[str]:
        found = re.findall(rf'<td data-label="{label}">(.*?)</td>', page)
        return [html.unescape(re.sub(r"<[^>]+>", "", cell)) for cell in found]

    own = clients[Role.member].get(f"/f/lab/runs/{run.id}").text
    assert cells(own, "Status") == ["200", "201", "204", "no sign-in"]
    assert cells(own, "Account") == [
        "the facility's account",
        "your account",
        "your account “lab notebook”",
        "",
    ]
    # Not even in a title: members read words (the page's wording table has the codes as
    # its keys, for the pages' scripts).
    assert 'title="no_integration_grant"' not in own
    theirs = clients[Role.admin].get(f"/f/lab/runs/{run.id}").text
    assert cells(theirs, "Account")[1] == f"{mia.name}'s account"
    assert 'title="no_integration_grant">no sign-in<' in theirs  # admins read the code too
