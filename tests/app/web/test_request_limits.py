"""Issue 8.16: bounded request bodies, websocket messages and connections, list limits."""

from __future__ import annotations

import html
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest
from limits import parse
from sqlalchemy import select

from app import db
from app.errors import ValidationError, too_large_message
from app.models import ApiToken, Facility, Role, Run, Script, User
from app.services import scripts
from app.services.context import MemberContext
from app.services.inputs import MAX_HELP_LENGTH
from app.services.scripts import MAX_DESCRIPTION_LENGTH
from tests.app.web.conftest import Site

MIB = 1024 * 1024


def _raw_exchange(site: Site, head: str, body: bytes = b"") -> bytes:
    """Send a request head (and part of a body) on a raw socket; the answer's first bytes.

    The socket times out (failing the test) if the server waits for the rest of the body.
    """
    port = urlsplit(site.live.url).port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def test_a_large_json_body_is_refused_with_413_in_the_json_error_shape(site: Site) -> None:
    response = site.ada.api("POST", "/api/tokens", json={"name": "x" * (2 * MIB)})
    assert response.status_code == 413
    error = response.json()["error"]
    assert error == {
        "code": "request_too_large",
        "message": "the request is larger than 1 MiB, the most this server accepts: send "
        "less than 1 MiB (a smaller JSON body, or less text in the form)",
    }
    with site.live.app.app_context():
        assert db.session.query(ApiToken).count() == 0


def test_a_large_page_form_is_refused_on_a_page_that_says_the_size_and_what_to_do(
    site: Site,
) -> None:
    # A browser's form (no JSON asked for) gets the error page, in the same words.
    response = site.ada.post_form("/settings/password", {"password": "x" * (2 * MIB)})
    assert response.status_code == 413
    assert response.headers["Content-Type"].startswith("text/html")
    page = html.unescape(response.text)
    said = "The request is larger than 1 MiB, the most this server accepts: send less than 1 MiB"
    assert said in page
    assert str(MIB) not in response.text


@pytest.mark.parametrize(
    ("limit", "size"), [(MIB, "1 MiB"), (256 * 1024, "256 KiB"), (1_500_000, "1500000 bytes")]
)
def test_the_limit_is_said_as_people_read_it(limit: int, size: str) -> None:
    assert too_large_message(limit).startswith(f"the request is larger than {size}, ")
    assert f"send less than {size} " in too_large_message(limit)


def test_a_body_just_under_the_limit_is_read_whole(site: Site) -> None:
    response = site.ada.api("POST", "/api/tokens", json={"name": "x" * (MIB - 100)})
    # Past the size limit's check and parsed: the answer is about the name's own length.
    assert response.status_code == 400, response.text[:200]
    assert response.json()["error"]["field"] == "name"


def test_a_declared_60_mb_body_is_refused_before_sign_in_without_reading_it(
    site: Site,
) -> None:
    # Only 1 KiB of the 60 MB is ever sent: the answer must come without waiting for it.
    head = (
        "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {60 * MIB}\r\nConnection: close\r\n"
    )
    answer = _raw_exchange(site, head, b"email=" + b"a" * 1024)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_chunked_body_without_a_length_is_cut_off_at_the_limit(site: Site) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"name": "'
        for _ in range(3):
            yield b"x" * MIB
        yield b'"}'

    response = site.ada.api(
        "POST", "/api/tokens", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    with site.live.app.app_context():
        assert db.session.query(ApiToken).count() == 0


def test_a_small_chunked_body_still_arrives_whole(site: Site) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"name": "'
        for _ in range(10):
            yield b"chunked"
        yield b'"}'

    response = site.ada.api(
        "POST", "/api/tokens", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201
    assert response.json()["name"] == ("chunked" * 10)


def test_a_large_websocket_message_closes_the_socket(site: Site) -> None:
    page = site.ada.websocket("lab")
    assert page.wait_for("hello")["facility"] == "lab"
    page.send({"type": "ping"})
    assert page.wait_for("pong") == {"type": "pong"}
    page.send({"type": "ping", "padding": "x" * (MIB)})
    assert page.next(timeout=15) is None  # closed by the server (1009, message too big)
    assert page.ws.close_reason == 1009


def test_a_message_nested_too_deeply_is_answered_and_the_page_goes_on(site: Site) -> None:
    page = site.ada.websocket("lab")
    page.wait_for("hello")
    page.ws.send("[" * 5000 + "]" * 5000)  # 10 KB, under the cap, deeper than json reads
    assert page.wait_for("error")["code"] == "invalid_message"
    page.send({"type": "ping"})
    assert page.wait_for("pong") == {"type": "pong"}
    page.close()


def test_the_message_cap_is_per_message_not_per_connection(site: Site) -> None:
    page = site.ada.websocket("lab")
    page.wait_for("hello")
    for _ in range(100):  # 100 x 2 KiB: past the 64 KiB cap in total, never in one message
        page.send({"type": "ping", "padding": "x" * 2048})
        assert page.wait_for("pong") == {"type": "pong"}
    page.close()


def test_a_flood_of_websocket_messages_closes_the_socket_in_words(site: Site) -> None:
    """Each message (a grant.refuse reads the database) spends the socket's budget: past it
    the page is told why and closed; another page of the same user is not."""
    budget = parse(site.live.app.config["WS_MESSAGES_PER_SOCKET"]).amount
    page, other = site.ada.websocket("lab"), site.ada.websocket("lab")
    page.wait_for("hello")
    other.wait_for("hello")
    for _ in range(budget):
        page.send({"type": "grant.refuse", "grant_id": "no-such-prompt"})
        assert page.wait_for("error")["code"] == "not_found"
    page.send({"type": "ping"})
    refusal = page.wait_for("error")
    assert refusal["code"] == "too_many_messages" and refusal["closing"] is True
    assert "too many messages" in refusal["message"] and "reload" in refusal["message"]
    assert page.next(timeout=5) is None  # closed by the server
    assert page.ws.close_reason == 1008 and page.ws.close_message == "too many messages"
    other.send({"type": "ping"})
    assert other.wait_for("pong") == {"type": "pong"}
    other.close()


def test_websockets_per_user_are_capped(site: Site) -> None:
    site.live.app.config["WS_MAX_CONNECTIONS_PER_USER"] = 2
    first, second = site.ada.websocket("lab"), site.ada.websocket("lab")
    for page in (first, second):
        page.wait_for("hello")
    third = site.ada.websocket("lab")
    refused = third.next()
    assert refused is not None and refused["code"] == "too_many_connections"
    assert refused["closing"] is True
    assert third.next(timeout=5) is None
    first.close()
    assert first.next(timeout=5) is None
    # A closed page gives its slot back (the server notices the close on its next read).
    for _attempt in range(50):
        fourth = site.ada.websocket("lab")
        message = fourth.next()
        if message is not None and message["type"] == "hello":
            break
        assert message is not None and message["code"] == "too_many_connections"
    else:
        pytest.fail("the closed page never gave its slot back")
    second.close()
    fourth.close()


@pytest.mark.parametrize(("limit", "expected"), [("200", 200), ("3", 3)])
def test_list_limits_in_range_are_kept(site: Site, limit: str, expected: int) -> None:
    with site.live.app.app_context():
        from app.models import Facility

        lab = db.session.query(Facility).filter_by(slug="lab").one()
        db.session.add_all(
            Run(facility_id=lab.id, user_id=site.ada_id, source="result = 1", status="succeeded")
            for _ in range(210)
        )
        db.session.commit()
    response = site.ada.api("GET", f"/api/f/lab/runs?limit={limit}")
    assert response.status_code == 200
    assert len(response.json()) == expected


@pytest.mark.parametrize("limit", ["-1", "0", "201", "100000"])
def test_a_limit_out_of_range_is_a_400_not_clamped(site: Site, limit: str) -> None:
    response = site.ada.api("GET", f"/api/f/lab/runs?limit={limit}")
    assert response.status_code == 400, response.text[:300]
    assert response.json()["error"]["field"] == "limit"


def test_a_limit_that_is_not_a_number_names_the_field(site: Site) -> None:
    response = site.ada.api("GET", "/api/f/lab/runs?limit=all")
    assert response.status_code == 400 and response.json()["error"]["field"] == "limit"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"description": "d" * (MAX_DESCRIPTION_LENGTH + 1)}, "description"),
        (
            {"inputs": [{"name": "n", "type": "text", "help": "h" * (MAX_HELP_LENGTH + 1)}]},
            "inputs",
        ),
    ],
)
def test_a_script_text_longer_than_is_kept_is_a_400_naming_it(
    site: Site, body: dict[str, Any], field: str
) -> None:
    created = site.ada.api("POST", "/api/f/lab/scripts", json={"name": "s", **body})
    assert created.status_code == 400, created.text[:300]
    assert created.json()["error"]["field"] == field
    script = site.ada.api("POST", "/api/f/lab/scripts", json={"name": "s"}).json()
    changed = site.ada.api("PATCH", f"/api/f/lab/scripts/{script['id']}", json=body)
    assert changed.status_code == 400, changed.text[:300]
    assert changed.json()["error"]["field"] == field


def test_script_texts_up_to_what_is_kept_are_stored_whole(site: Site) -> None:
    description, help_text = "d" * MAX_DESCRIPTION_LENGTH, "h" * MAX_HELP_LENGTH
    created = site.ada.api("POST", "/api/f/lab/scripts", json={
        "name": "s", "description": description,
        "inputs": [{"name": "n", "type": "text", "help": help_text}],
    })
    assert created.status_code == 201, created.text[:300]
    assert created.json()["description"] == description
    assert created.json()["inputs"][0]["help"] == help_text


def test_the_services_refuse_what_the_api_would_rather_than_cut_it(site: Site) -> None:
    # The limits are the services': a caller other than the API (duplicate, a page, the CLI)
    # gets the same refusal, not a silently shortened text.
    with site.live.app.app_context():
        ada = db.session.get(User, site.ada_id)
        lab = db.session.scalars(select(Facility).where(Facility.slug == "lab")).one()
        assert ada is not None
        member = MemberContext(ada, lab, Role.scripter)
        with pytest.raises(ValidationError) as caught:
            scripts.create_script(
                db.session(), member, name="s", description="d" * (MAX_DESCRIPTION_LENGTH + 1)
            )
        assert caught.value.details["field"] == "description"
        with pytest.raises(ValidationError) as caught:
            scripts.create_script(db.session(), member, name="s", input_fields=[
                {"name": "n", "type": "text", "help": "h" * (MAX_HELP_LENGTH + 1)},
            ])
        assert caught.value.details["field"] == "inputs"
        db.session.rollback()


@pytest.mark.parametrize("default", ["yes", "true", 1, [True]])
def test_a_boolean_input_whose_default_is_not_a_boolean_is_a_400(
    site: Site, default: Any
) -> None:
    inputs = [{"name": "loud", "type": "boolean", "default": default}]
    created = site.ada.api("POST", "/api/f/lab/scripts", json={"name": "s", "inputs": inputs})
    assert created.status_code == 400, created.text[:300]
    error = created.json()["error"]
    assert error["field"] == "inputs"
    assert error["message"] == "input loud: the default does not fit the type boolean"
    with site.live.app.app_context():
        assert db.session.scalars(select(Script)).all() == []


def test_a_boolean_or_json_default_sent_as_its_value_is_stored_as_that_value(site: Site) -> None:
    inputs = [
        {"name": "loud", "type": "boolean", "default": False},
        {"name": "opts", "type": "json", "default": {"a": [1]}},
    ]
    created = site.ada.api("POST", "/api/f/lab/scripts", json={"name": "s", "inputs": inputs})
    assert created.status_code == 201, created.text[:300]
    properties = created.json()["input_schema"]["properties"]
    assert properties["loud"]["default"] is False
    assert properties["opts"]["default"] == {"a": [1]}
