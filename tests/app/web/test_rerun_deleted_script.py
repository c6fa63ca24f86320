"""Run again on a run whose script was deleted since: the run page says the script was
deleted in place of the button, and the API refuses in words (it re-ran the deleted
script's last source, for scripters, with nothing on the page to say so). Editor runs of
unsaved source still run again."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import func, select

from app import db
from app.models import Run
from tests.app.web.test_versions_api import call, clients

__all__ = ["clients"]  # the fixture, imported for pytest to find


def test_a_deleted_scripts_run_cannot_run_again(clients: dict[str, FlaskClient]) -> None:
    scripter, member = clients["scripter"], clients["member"]
    _, script = call(scripter, "POST", "/scripts",
                     {"name": "Greeter", "source": "result = 1", "published": True})
    _, theirs = call(member, "POST", "/runs", {"script_id": script["id"]})
    _, mine = call(scripter, "POST", "/runs", {"script_id": script["id"]})
    _, draft = call(scripter, "POST", "/runs", {"source": "result = 2"})
    assert call(scripter, "DELETE", f"/scripts/{script['id']}")[0] == 204
    before = db.session.scalar(select(func.count()).select_from(Run))

    for who, run in ((scripter, mine), (member, theirs)):
        status, refused = call(who, "POST", f"/runs/{run['id']}/rerun")
        assert status == 409, refused
        assert refused["error"]["code"] == "script_deleted"
        assert refused["error"]["message"].startswith(
            "This run's script was deleted, so the run cannot be run again")
        page = who.get(f"/f/lab/runs/{run['id']}").get_data(as_text=True)
        assert 'id="rerun"' not in page
        assert "This script was deleted: the run cannot be run again." in page
    assert db.session.scalar(select(func.count()).select_from(Run)) == before

    # An editor run of unsaved source is no deleted script's: it runs again.
    page = scripter.get(f"/f/lab/runs/{draft['id']}").get_data(as_text=True)
    assert 'id="rerun"' in page and "This script was deleted" not in page
    status, again = call(scripter, "POST", f"/runs/{draft['id']}/rerun")
    assert status in (200, 201), again
