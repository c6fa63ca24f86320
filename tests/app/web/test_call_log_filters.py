"""The call log page's address is read as the Runs page reads its own: a filter it cannot
read (?status=bogus) is said by the form in words and lists no call, where the page showed
every call as if it were not there; one that names nothing in a list is kept as it came.
The call log's API refuses such a status with a 400 naming it."""

from __future__ import annotations

import html
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import db
from app.models import Role
from app.testing import signed_in_session
from tests.conftest import add_member, create_facility, create_user


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Ada, admin of `lab`, signed in."""
    session = db.session()
    lab = create_facility(session, slug="lab")
    ada = create_user(session, email="ada@example.com")
    add_member(session, user=ada, facility=lab, role=Role.admin)
    session.commit()
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie.update(signed_in_session(app, ada.id))
    return client


def said(text: str) -> list[str]:
    """The sentences the page says by its filter form."""
    return [html.unescape(p) for p in re.findall(r'<p class="error filter-problem">([^<]*)</p>',
                                                 text)]


@pytest.mark.parametrize(
    ("query", "sentence"),
    [
        ("status=bogus", "Status takes OK or Errors, not “bogus”."),
        ("user=abc", "User takes one of the members in its list, not “abc”."),
        ("script=1.5", "Script takes one of the scripts in its list, not “1.5”."),
    ],
)
def test_a_filter_the_page_cannot_read_is_said_by_the_form(
    client: FlaskClient, query: str, sentence: str
) -> None:
    response = client.get(f"/f/lab/manage/calls?{query}")
    assert response.status_code == 200
    assert said(response.text) == [sentence]
    # calls.js lists no call while this is on the page.
    assert 'id="call-filter-problems"' in response.text
    assert re.search(r'<a href="/f/lab/manage/calls">Clear the filters</a> to see every call',
                     response.text)


def test_the_other_filters_stay_beside_a_wrong_one(client: FlaskClient) -> None:
    response = client.get("/f/lab/manage/calls?status=bogus&integration=gone&script=7")
    assert said(response.text) == ["Status takes OK or Errors, not “bogus”."]
    kept = re.search(r'<a id="keep-filters" href="([^"]*)"', response.text)
    assert kept and html.unescape(kept[1]) == "/f/lab/manage/calls?integration=gone&script=7"
    # Named by no entry of their lists (a deleted integration's or script's calls stay in
    # the log), they stay chosen as they came.
    assert '<option value="gone" selected>gone</option>' in response.text
    assert '<option value="7" selected>script 7</option>' in response.text


def test_filters_it_reads_are_chosen_and_say_nothing(client: FlaskClient) -> None:
    response = client.get("/f/lab/manage/calls?status=error")
    assert said(response.text) == []
    assert 'id="call-filter-problems"' not in response.text
    assert '<option value="error" selected>Errors</option>' in response.text


def test_the_api_refuses_a_status_it_does_not_know(client: FlaskClient) -> None:
    response = client.get("/api/f/lab/calls?status=bogus")
    assert response.status_code == 400
    assert "status" in response.get_json()["error"]["message"]
    assert client.get("/api/f/lab/calls?status=error").status_code == 200
