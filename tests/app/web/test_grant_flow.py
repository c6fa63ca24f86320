"""The pause → prompt → resume flow over a real websocket, without a browser (DESIGN §4)."""

from __future__ import annotations

import html
from typing import Any

import pytest
from sqlalchemy import Delete, delete, select

from app import db
from app.models import Account, Facility, Grant, Integration, Membership, Role, User
from app.testing import LiveServer, RoundTrips, WebClient
from tests.app.web.conftest import API_KEY
from tests.conftest import add_member, create_facility, create_integration, create_user

NEEDS_KEY = """
resp = integrations.get("keyed", "/echo", params={"q": "1"})
# The key arrived (the API checks it: 200) and what came back holds it only as [redacted].
echoed = resp.json()["headers"].get("x-api-key")
hidden = echoed == "[redacted]" and input["key"] not in resp.text
result = {"status": resp.status, "saw_key": hidden}
"""

CATCHES_REFUSAL = """
try:
    integrations.get("keyed", "/echo")
    result = {"connected": True}
except integrations.NoIntegrationGrant as refused:
    result = {"connected": False, "reason": refused.reason}
"""


@pytest.fixture
def world(live: LiveServer, keyapi: str) -> dict[str, Any]:
    """A facility with a member, an outsider and an API-key integration nobody connected."""
    with live.app.app_context():
        session = db.session()
        facility = create_facility(session, slug="lab")
        other = create_facility(session, slug="elsewhere")
        member = create_user(session, email="mia@example.com")
        outsider = create_user(session, email="olga@example.com")
        add_member(session, user=member, facility=facility, role=Role.member)
        add_member(session, user=outsider, facility=other, role=Role.admin)
        create_integration(
            session, facility=facility, key="keyed", name="Keyed API", base_url=keyapi
        )
        session.commit()
        ids = {"member": member.id, "outsider": outsider.id}
    return {
        "member": WebClient(live.app, live.url, ids["member"]),
        "outsider": WebClient(live.app, live.url, ids["outsider"]),
        "live": live,
    }


def start_run(client: WebClient, source: str, run_input: Any = None) -> str:
    response = client.api(
        "POST", "/api/f/lab/runs", json={"source": source, "input": run_input, "interactive": True}
    )
    assert response.status_code in (200, 201), response.text
    run_id: str = response.json()["id"]
    return run_id


def start_member_run(world: dict[str, Any], source: str, run_input: Any = None) -> str:
    """Members may not run raw source, so the tests give the member the scripter role."""
    live: LiveServer = world["live"]
    with live.app.app_context():
        from app.models import Facility, Membership

        session = db.session()
        facility = session.query(Facility).filter_by(slug="lab").one()
        membership = session.query(Membership).filter_by(facility_id=facility.id).first()
        assert membership is not None
        membership.role = Role.scripter
        session.commit()
    return start_run(world["member"], source, run_input)


def test_prompt_then_sign_in_resumes_the_run(world: dict[str, Any]) -> None:
    page = world["member"].websocket("lab")
    page.wait_for("hello")
    run_id = start_member_run(world, NEEDS_KEY, {"key": API_KEY})

    prompt = page.wait_for("grant.required")
    assert prompt["integration"] == {"key": "keyed", "name": "Keyed API", "auth_mode": "api_key"}
    assert prompt["run_id"] == run_id
    assert prompt["sign_in_url"] == f"/f/lab/grants/{prompt['grant_id']}/sign-in"
    page.wait_for("run.status", run_id=run_id, status="waiting_for_grant")
    state = world["member"].api("GET", f"/api/f/lab/runs/{run_id}").json()
    assert state["status"] == "waiting_for_grant"

    signed = world["member"].post_form(prompt["sign_in_url"], {"api_key": API_KEY})
    assert signed.status_code == 200, signed.text

    resolved = page.wait_for("grant.resolved", grant_id=prompt["grant_id"])
    assert resolved["state"] == "granted"
    finished = page.wait_for("run.finished", run_id=run_id)["run"]
    assert finished["status"] == "succeeded", finished
    assert finished["result"] == {"status": 200, "saw_key": True}
    page.close()


def test_an_admin_connecting_the_master_key_resumes_a_waiting_run(world: dict[str, Any]) -> None:
    """The run waits live for the member's sign-in (account=None); an admin saves the
    facility's master key on the Management page meanwhile: the run takes it (DESIGN §3)
    where it waited until its prompt expired."""
    live: LiveServer = world["live"]
    page = world["member"].websocket("lab")
    page.wait_for("hello")
    run_id = start_member_run(world, NEEDS_KEY, {"key": API_KEY})
    prompt = page.wait_for("grant.required")
    page.wait_for("run.status", run_id=run_id, status="waiting_for_grant")
    with live.app.app_context():  # (after start_member_run, which promotes lab's member)
        session = db.session()
        ada = create_user(session, email="ada@example.com")
        lab = session.scalars(select(Facility).where(Facility.slug == "lab")).one()
        add_member(session, user=ada, facility=lab, role=Role.admin)
        session.commit()
        admin = WebClient(live.app, live.url, ada.id)

    saved = admin.api(
        "POST", "/api/f/lab/integrations/keyed/master", json={"fields": {"api_key": API_KEY}}
    )
    assert saved.status_code == 201, saved.text

    resolved = page.wait_for("grant.resolved", grant_id=prompt["grant_id"])
    assert resolved["state"] == "granted"
    finished = page.wait_for("run.finished", run_id=run_id)["run"]
    assert finished["status"] == "succeeded", finished
    with live.app.app_context():
        grant = db.session.get(Grant, prompt["grant_id"])
        assert grant is not None and grant.account_id == saved.json()["id"]
    page.close()


def test_refusal_raises_no_integration_grant_in_the_script(world: dict[str, Any]) -> None:
    page = world["member"].websocket("lab")
    page.wait_for("hello")
    run_id = start_member_run(world, CATCHES_REFUSAL)
    prompt = page.wait_for("grant.required")
    page.send({"type": "grant.refuse", "grant_id": prompt["grant_id"]})
    assert page.wait_for("grant.resolved", grant_id=prompt["grant_id"])["state"] == "refused"
    finished = page.wait_for("run.finished", run_id=run_id)["run"]
    assert finished["status"] == "succeeded"
    assert finished["result"] == {"connected": False, "reason": "refused"}


def test_a_prompt_nobody_answers_expires(world: dict[str, Any]) -> None:
    world["live"].app.extensions["grants"].timeout_s = 0.5
    page = world["member"].websocket("lab")
    page.wait_for("hello")
    run_id = start_member_run(world, NEEDS_KEY, {"key": API_KEY})
    prompt = page.wait_for("grant.required")
    assert page.wait_for("grant.resolved", grant_id=prompt["grant_id"])["state"] == "expired"
    finished = page.wait_for("run.finished", run_id=run_id)["run"]
    assert finished["status"] == "failed"
    assert finished["error"]["code"] == "no_integration_grant"
    assert finished["error"]["line"] == 2


def test_without_an_open_page_the_call_is_refused_at_once(world: dict[str, Any]) -> None:
    run_id = start_member_run(world, CATCHES_REFUSAL)
    run = world["member"].api("GET", f"/api/f/lab/runs/{run_id}")
    for _ in range(100):
        run = world["member"].api("GET", f"/api/f/lab/runs/{run_id}")
        if run.json()["status"] in ("succeeded", "failed"):
            break
        import time

        time.sleep(0.1)
    assert run.json()["result"] == {"connected": False, "reason": "not_interactive"}


def test_every_open_page_gets_the_prompt_and_runs_share_it(world: dict[str, Any]) -> None:
    first, second = world["member"].websocket("lab"), world["member"].websocket("lab")
    first.wait_for("hello")
    second.wait_for("hello")
    run_a = start_member_run(world, NEEDS_KEY, {"key": API_KEY})
    prompt = first.wait_for("grant.required")
    run_b = start_run(world["member"], NEEDS_KEY, {"key": API_KEY})
    first.wait_for("run.status", run_id=run_b, status="waiting_for_grant")
    assert second.wait_for("grant.required")["grant_id"] == prompt["grant_id"]
    assert not [m for m in first.seen if m.get("type") == "grant.required"]  # one prompt only

    world["member"].post_form(prompt["sign_in_url"], {"api_key": API_KEY})
    for run_id in (run_a, run_b):
        finished = second.wait_for("run.finished", run_id=run_id)["run"]
        assert finished["status"] == "succeeded", finished
    with world["live"].app.app_context():
        grants = db.session.query(Grant).all()
        assert [(g.state, g.id) for g in grants] == [("granted", prompt["grant_id"])]


def test_a_reconnecting_page_is_shown_pending_prompts(world: dict[str, Any]) -> None:
    page = world["member"].websocket("lab")
    page.wait_for("hello")
    start_member_run(world, NEEDS_KEY, {"key": API_KEY})
    prompt = page.wait_for("grant.required")
    page.close()
    again = world["member"].websocket("lab")
    again.wait_for("hello")
    assert again.wait_for("grant.required")["grant_id"] == prompt["grant_id"]
    again.send({"type": "grant.refuse", "grant_id": prompt["grant_id"]})
    again.wait_for("grant.resolved", grant_id=prompt["grant_id"])


def test_another_users_refusal_is_refused_and_changes_nothing(world: dict[str, Any]) -> None:
    page = world["member"].websocket("lab")
    page.wait_for("hello")
    start_member_run(world, CATCHES_REFUSAL)
    prompt = page.wait_for("grant.required")
    foreign = world["outsider"].websocket("elsewhere")
    foreign.wait_for("hello")
    foreign.send({"type": "grant.refuse", "grant_id": prompt["grant_id"]})
    assert foreign.wait_for("error")["code"] == "not_found"
    answer = world["outsider"].api("POST", f"/api/f/lab/grants/{prompt['grant_id']}/refuse")
    assert answer.status_code == 404
    form = world["outsider"].post_form(prompt["sign_in_url"], {"api_key": "stolen"})
    assert form.status_code == 404
    with world["live"].app.app_context():
        assert db.session.get(Grant, prompt["grant_id"]).state == "pending"
    page.send({"type": "grant.refuse", "grant_id": prompt["grant_id"]})
    page.wait_for("grant.resolved", grant_id=prompt["grant_id"])


def mia_joins_elsewhere(live: LiveServer) -> Delete:
    """Make the member Mia a member of `elsewhere` too; the statement that removes her."""
    with live.app.app_context():
        session = db.session()
        elsewhere = session.scalars(select(Facility).where(Facility.slug == "elsewhere")).one()
        mia = session.scalars(select(User).where(User.email == "mia@example.com")).one()
        add_member(session, user=mia, facility=elsewhere, role=Role.member)
        session.commit()
        return delete(Membership).where(Membership.user_id == mia.id,
                                        Membership.facility_id == elsewhere.id)


def test_a_page_of_several_facilities_hears_each_and_refuses_in_each(
    world: dict[str, Any],
) -> None:
    """Settings asks for every facility of the user's (base.html): each is checked as a
    page of it would be, and a prompt of any of them is shown and answered there. One the
    user is not in is left out (they left it since the page loaded); none: refused."""
    live: LiveServer = world["live"]
    outside = world["member"].websocket("elsewhere", also=("nowhere",))
    refused = outside.next()
    assert refused is not None and (refused["code"], refused["closing"]) == ("not_found", True)
    partly = world["member"].websocket("elsewhere", also=("lab",))
    assert partly.wait_for("hello")["facilities"] == ["lab"]
    partly.close()
    mia_joins_elsewhere(live)
    page = world["member"].websocket("elsewhere", also=("lab",))
    assert page.wait_for("hello")["facilities"] == ["elsewhere", "lab"]
    start_member_run(world, CATCHES_REFUSAL)
    prompt = page.wait_for("grant.required")
    assert prompt["facility"] == "lab"  # the page's Refuse without a socket goes there
    page.send({"type": "grant.refuse", "grant_id": prompt["grant_id"]})
    assert page.wait_for("grant.resolved", grant_id=prompt["grant_id"])["state"] == "refused"
    page.close()


def test_a_page_of_several_goes_on_hearing_the_others_when_one_is_left(
    world: dict[str, Any],
) -> None:
    """Removed from one of a Settings page's facilities, the page used to be refused
    (session_ended) at the next check and stopped reconnecting: the prompts of the user's
    other facilities stopped too, until a reload. Now the socket closes without a
    refusal, and the page's next one, naming the same facilities, hears the others."""
    live: LiveServer = world["live"]
    live.app.config["WS_RECHECK_S"] = 0.2
    left = mia_joins_elsewhere(live)
    page = world["member"].websocket("elsewhere", also=("lab",))
    assert page.wait_for("hello")["facilities"] == ["elsewhere", "lab"]
    with live.app.app_context():
        db.session.execute(left)
        db.session.commit()
    while (message := page.next(timeout=5)) is not None:
        assert message["type"] != "error", message  # no refusal: the page reconnects
    assert not page.ws.connected  # closed by the server, not merely quiet
    again = world["member"].websocket("elsewhere", also=("lab",))
    assert again.wait_for("hello")["facilities"] == ["lab"]
    start_member_run(world, CATCHES_REFUSAL)
    prompt = again.wait_for("grant.required")
    again.send({"type": "grant.refuse", "grant_id": prompt["grant_id"]})
    assert again.wait_for("grant.resolved", grant_id=prompt["grant_id"])["state"] == "refused"
    again.close()


@pytest.mark.parametrize("who", ["anonymous", "bad_origin", "other_facility"])
def test_the_websocket_checks_origin_session_and_membership(
    world: dict[str, Any], who: str
) -> None:
    client: WebClient = world["outsider"] if who == "other_facility" else world["member"]
    if who == "anonymous":
        client.cookie = "session=forged"
    origin = "http://evil.example" if who == "bad_origin" else None
    page = client.websocket("lab", origin=origin)
    message = page.next()
    assert message is not None and message["type"] == "error"
    assert message["code"] in {"forbidden_origin", "not_authenticated", "not_found"}
    assert message["closing"] is True  # the page stops reconnecting and says why
    assert page.next(timeout=2) is None  # and the server closed the socket


@pytest.mark.parametrize("park_after_s", [60.0, 0.0], ids=["live", "parked"])
def test_switching_the_integration_off_ends_the_wait_and_says_so(
    world: dict[str, Any], park_after_s: float
) -> None:
    """The prompt used to stay, the member signed in to a switched-off service, and the run
    then failed with "could not be reached. Try again later"."""
    live: LiveServer = world["live"]
    live.app.config["PARK_AFTER_S"] = park_after_s
    with live.app.app_context():
        session = db.session()
        from app.models import Facility

        admin = create_user(session, email="ada@example.com")
        lab = session.query(Facility).filter_by(slug="lab").one()
        add_member(session, user=admin, facility=lab, role=Role.admin)
        session.commit()
        admin_id = admin.id
    page = world["member"].websocket("lab")
    page.wait_for("hello")
    run_id = start_member_run(world, NEEDS_KEY, {"key": API_KEY})
    prompt = page.wait_for("grant.required")
    waiting = "parked" if park_after_s == 0 else "waiting_for_grant"
    page.wait_for("run.status", run_id=run_id, status=waiting)

    switched = WebClient(live.app, live.url, admin_id).api(
        "POST", "/api/f/lab/integrations/keyed/disable")
    assert switched.status_code == 200, switched.text

    assert page.wait_for("grant.resolved", grant_id=prompt["grant_id"])["state"] == "cancelled"
    finished = page.wait_for("run.finished", run_id=run_id)["run"]
    assert finished["status"] == "failed"
    assert finished["error"]["code"] == "integration_unavailable"
    assert finished["error"]["reason"] == "switched_off"
    assert finished["error"]["message"] == "Keyed API is switched off by an admin of this facility"
    words = world["member"].api("GET", f"/api/f/lab/runs/{run_id}/explain").json()["words"]
    assert words == ("An admin of this facility switched Keyed API off. Ask an admin to switch"
                     " it on again, then run the script again.")
    # The editor's readiness says so before anyone runs it.
    ready = world["member"].api("POST", "/api/f/lab/readiness", json={"source": NEEDS_KEY})
    assert [item["state"] for item in ready.json()] == ["switched_off"]


ASKS_FIRST = 'integrations.require("keyed")\nresult = integrations.get("keyed", "/echo").status\n'


@pytest.mark.parametrize("park_after_s", [60.0, 0.0], ids=["live", "parked"])
def test_a_runs_calls_are_its_requests_as_its_call_list_shows_them(
    world: dict[str, Any], park_after_s: float
) -> None:
    """`require` asked for the sign-in but sent nothing: it was counted as a call the run's
    list of calls never showed (Calls 2 beside one row)."""
    world["live"].app.config["PARK_AFTER_S"] = park_after_s
    page = world["member"].websocket("lab")
    page.wait_for("hello")
    run_id = start_member_run(world, ASKS_FIRST)
    prompt = page.wait_for("grant.required")
    signed = world["member"].post_form(prompt["sign_in_url"], {"api_key": API_KEY})
    assert signed.status_code == 200, signed.text
    finished = page.wait_for("run.finished", run_id=run_id)["run"]
    assert finished["status"] == "succeeded" and finished["result"] == 200, finished
    listed = world["member"].api("GET", f"/api/f/lab/runs/{run_id}/calls").json()
    # The list also holds the require, which waited for the sign-in (not a request).
    assert [call["method"] for call in listed] == ["require", "GET"]
    assert finished["calls"] == len([c for c in listed if c["method"] != "require"]) == 1


REQUIRE_REFUSED = """
try:
    integrations.require("keyed")
except integrations.NoIntegrationGrant as refused:
    print(refused.reason)
integrations.require("nothere")
"""


def test_a_require_that_asked_for_a_sign_in_is_in_the_call_log_and_not_usage(
    world: dict[str, Any]
) -> None:
    """The call log showed nothing of a run's wait at `integrations.require` (nor of its
    refusal), while a request's wait had its row. Such a row sent nothing: never usage."""
    page = world["member"].websocket("lab")
    page.wait_for("hello")
    signed_in = start_member_run(world, ASKS_FIRST)
    prompt = page.wait_for("grant.required", run_id=signed_in)
    world["member"].post_form(prompt["sign_in_url"], {"api_key": API_KEY})
    assert page.wait_for("run.finished", run_id=signed_in)["run"]["status"] == "succeeded"
    with world["live"].app.app_context():  # the member's key goes: the next run is asked
        db.session.execute(delete(Account))
        db.session.commit()
    refused = start_run(world["member"], REQUIRE_REFUSED)
    prompt = page.wait_for("grant.required", run_id=refused)
    page.send({"type": "grant.refuse", "grant_id": prompt["grant_id"]})
    ended = page.wait_for("run.finished", run_id=refused)["run"]
    assert ended["error"]["code"] == "unknown_integration", ended
    page.close()
    with world["live"].app.app_context():
        membership = db.session.scalars(
            select(Membership).join(Facility).where(Facility.slug == "lab")
        ).one()
        membership.role = Role.admin
        db.session.commit()
    logged = world["member"].api("GET", "/api/f/lab/calls").json()
    seen = [
        (c["run_id"], c["integration"], c["method"], c["path"], c["account"], c["status"],
         c["error"], c["wait_ms"] is not None)
        for c in reversed(logged)
    ]
    assert seen == [
        (signed_in, "keyed", "require", "", "user", None, None, True),
        (signed_in, "keyed", "GET", seen[1][3], "user", 200, None, False),
        (refused, "keyed", "require", "", None, None, "no_integration_grant", True),
        (refused, "nothere", "require", "", None, None, "unknown_integration", False),
    ]
    usage = world["member"].api("GET", "/api/f/lab/usage").json()
    assert usage["calls"] == {"keyed": 1} and usage["total"] == 1  # the GET alone


def test_a_prompt_reads_whether_the_run_is_interactive_from_its_claim(
    world: dict[str, Any],
) -> None:
    # The claim returns the run's row (DRIVEN_COLUMNS): the grant hook asks no SELECT of
    # its own for Run.interactive on each call that needs a sign-in.
    live: LiveServer = world["live"]
    page = world["member"].websocket("lab")
    page.wait_for("hello")
    with RoundTrips(db.engine_of(live.app)) as counted:
        run_id = start_member_run(world, CATCHES_REFUSAL)
        prompt = page.wait_for("grant.required", run_id=run_id)
        page.send({"type": "grant.refuse", "grant_id": prompt["grant_id"]})
        finished = page.wait_for("run.finished", run_id=run_id)["run"]
    assert finished["result"] == {"connected": False, "reason": "refused"}
    reads = [sql for sql in counted.statements if sql.startswith("SELECT runs.interactive")]
    assert reads == []
    page.close()


USER_ACCOUNT = """
try:
    integrations.get("keyed", "/echo", account="user")
    result = {"connected": True}
except integrations.NoIntegrationGrant as refused:
    result = {"connected": False, "reason": refused.reason}
"""


def test_a_prompt_for_the_default_account_names_the_persons_labelled_ones(
    world: dict[str, Any],
) -> None:
    """Mia connected Keyed API only as "work": `account="user"` asks for her unlabelled
    one, and the prompt and its sign-in page say why she is asked again (DESIGN §3). The
    labels are hers alone: Olga's account of the same integration is not named."""
    live: LiveServer = world["live"]
    with live.app.app_context():
        session = db.session()
        lab = session.scalars(select(Facility).where(Facility.slug == "lab")).one()
        keyed = lab_integration(session, lab.id)
        for email, label in (("mia@example.com", "work"), ("olga@example.com", "theirs")):
            user = session.scalars(select(User).where(User.email == email)).one()
            session.add(Account(facility_id=lab.id, integration_id=keyed, owner_kind="user",
                                user_id=user.id, label=label))
        session.commit()
    page = world["member"].websocket("lab")
    page.wait_for("hello")
    run_id = start_member_run(world, USER_ACCOUNT)
    prompt = page.wait_for("grant.required", run_id=run_id)
    note = (
        "This script asks for your default Keyed API account (connected without a label); "
        "your 'work' account is used only by scripts that name it."
    )
    assert (prompt["label"], prompt["account_note"]) == ("", note)
    form = world["member"].api("GET", prompt["sign_in_url"])
    assert form.status_code == 200
    assert note in html.unescape(form.text)
    assert "theirs" not in form.text
    # Settings lists "work" as connected beside "1 run waits for this sign-in": it says why.
    settings = html.unescape(world["member"].api("GET", "/settings/integrations").text)
    waiting = settings.split('class="waiting-note"')[1].split("</p>")[0]
    assert f'<span class="account-note">{note}</span>' in waiting
    page.send({"type": "grant.refuse", "grant_id": prompt["grant_id"]})
    finished = page.wait_for("run.finished", run_id=run_id)["run"]
    assert finished["result"] == {"connected": False, "reason": "refused"}
    page.close()


def test_a_prompt_of_someone_with_no_account_of_it_has_no_note(world: dict[str, Any]) -> None:
    page = world["member"].websocket("lab")
    page.wait_for("hello")
    run_id = start_member_run(world, USER_ACCOUNT)
    prompt = page.wait_for("grant.required", run_id=run_id)
    assert prompt["account_note"] is None
    form = world["member"].api("GET", prompt["sign_in_url"])
    assert 'class="account-note"' not in form.text
    page.send({"type": "grant.refuse", "grant_id": prompt["grant_id"]})
    page.wait_for("run.finished", run_id=run_id)
    page.close()


def lab_integration(session: Any, facility_id: int) -> int:
    """The id of the lab's Keyed API integration."""
    return session.scalars(
        select(Integration.id).where(
            Integration.facility_id == facility_id, Integration.key == "keyed"
        )
    ).one()
