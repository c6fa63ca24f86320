"""The websocket: pushes run and grant events to a user's open pages; takes `grant.refuse`.

Checks the Origin and the session before anything else; holds no domain logic. An admin's
page also watches the facility's run events (admins see everyone's runs); a member's page
hears only about the member's own runs and prompts. A page of no one facility (Settings)
asks for several (`?facility=a&facility=b`): it hears the user's own prompts and runs in
each, checked facility by facility, and watches none.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed
from sqlalchemy import select

from app import db, extensions
from app.errors import AppError, NotFound
from app.models import Grant, Membership, Role
from app.models._types import UNSTORABLE_TEXT
from app.seams import Subscription
from app.services import sessions
from app.services.context import MemberContext
from app.web.limits import websocket_slots
from app.web.security import current_identity, require_member, session_secret, token_live
from app.web.throttle import message_budget

sock = Sock()


@dataclass(frozen=True)
class _Room:
    """One facility a page hears: `watch`, its run events too (an admin's page of it)."""

    slug: str
    facility_id: int
    watch: bool


def _origin_allowed() -> bool:
    # Only the configured public URL: `Host` is chosen by the client (a rebound DNS name
    # sends its own), so comparing the Origin with it proves nothing.
    origin = request.headers.get("Origin")
    public = urlsplit(current_app.config["PUBLIC_URL"])
    return origin == f"{public.scheme}://{public.netloc}"


def _send(ws: Any, message: dict[str, Any]) -> None:
    ws.send(json.dumps(message))


def _refuse(ws: Any, code: str, message: str, **extra: Any) -> None:
    """Tell the page why it is not served and close its socket. The message says `closing`:
    the page would be refused again, so it stops reconnecting and shows the words
    (static/js/ws.js)."""
    _send(ws, {"type": "error", "code": code, "message": message, "closing": True, **extra})
    ws.close(reason=1008)


@sock.route("/ws")  # type: ignore[untyped-decorator]
def events(ws: Any) -> None:
    """One open page of a signed-in member of `?facility=<slug>`."""
    if not _origin_allowed():
        # Said in words, as the page shows it: opened at another address than the public
        # URL (localhost for 127.0.0.1), the page would otherwise wait for events forever.
        public = str(current_app.config["PUBLIC_URL"])
        _refuse(ws, "forbidden_origin", f"origin not allowed: open Scriptbox at {public}/ "
                "for live updates (its SCRIPTBOX_PUBLIC_URL)", public_url=public)
        return
    slugs = list(dict.fromkeys(request.args.getlist("facility"))) or [""]
    try:
        members = _members(slugs)
    except AppError as exc:
        _refuse(ws, exc.code, exc.message)
        return
    user_id = members[0].user.id
    # One facility's page watches its runs for an admin; a page of several (Settings)
    # shows no runs, so it hears only the user's own messages.
    several = len(slugs) > 1
    rooms = [
        _Room(m.facility.slug, m.facility.id, not several and m.can(Role.admin))
        for m in members
    ]
    slots = websocket_slots()
    slot = slots.acquire(user_id, int(current_app.config["WS_MAX_CONNECTIONS_PER_USER"]))
    if slot is None:
        db.session.remove()
        _refuse(ws, "too_many_connections",
                "too many open Scriptbox pages; close some and reload this one")
        return
    identity = current_identity()
    token_id = identity.token_id if identity is not None else None
    try:
        _serve(ws, rooms, user_id, _Proof(session_secret(), token_id), several=several,
               renew=lambda: slots.renew(user_id, slot))
    finally:
        slots.release(user_id, slot)


def _members(slugs: list[str]) -> list[MemberContext]:
    """The user's memberships of the facilities a page asks for, each checked as one page of
    it would be (a repeated one once). A page of several (Settings) names every facility the
    user was in when it loaded: one they have left since is left out, so the others' prompts
    go on; NotFound when none is left, as for a page of one."""
    members: list[MemberContext] = []
    refusal: NotFound | None = None
    for slug in slugs:
        try:
            members.append(require_member(slug))
        except NotFound as exc:
            refusal = refusal or exc
    if refusal is not None and not members:
        raise refusal
    return members


@dataclass(frozen=True)
class _Proof:
    """How the page's user signed in: a browser session's secret, or an API token's row."""

    sid: str | None
    token_id: int | None


def _rooms_allowed(proof: _Proof, user_id: int, rooms: list[_Room]) -> list[_Room]:
    """The rooms the user may still hear (none once signed out, or once the API token
    that opened the page is revoked). Re-read from the database, so an ending made by any
    process closes the socket; a page watching a facility's runs closes too once its user
    is no admin there any more."""
    try:
        signed_out = (
            proof.sid is not None
            and sessions.session_user(db.session(), secret=proof.sid, user_id=user_id) is None
        ) or (proof.token_id is not None and not token_live(proof.token_id, user_id))
        if signed_out:
            return []
        roles = {
            facility_id: role
            for facility_id, role in db.session.execute(
                select(Membership.facility_id, Membership.role).where(
                    Membership.user_id == user_id,
                    Membership.facility_id.in_([room.facility_id for room in rooms]),
                )
            )
        }
        return [
            room
            for room in rooms
            if room.facility_id in roles
            and (not room.watch or Role(roles[room.facility_id]).at_least(Role.admin))
        ]
    finally:
        db.session.remove()


def _serve(
    ws: Any,
    rooms: list[_Room],
    user_id: int,
    proof: _Proof,
    *,
    several: bool,
    renew: Callable[[], None],
) -> None:
    recheck_s = float(current_app.config["WS_RECHECK_S"])
    bus = extensions.bus()
    subscriptions: list[Subscription] = []
    grants = extensions.grants()
    budget, socket_id = message_budget(), uuid.uuid4().hex
    closed = threading.Event()
    lock = threading.Lock()

    def pump(subscription: Subscription) -> None:
        while not closed.is_set():
            message = subscription.get(timeout=0.5)
            if message is None:
                continue
            try:
                with lock:
                    _send(ws, message)
            except (ConnectionClosed, OSError):
                # A page that went away mid-send surfaces as a broken pipe or a reset as
                # often as a clean close: either way this page is done.
                closed.set()

    try:
        for room in rooms:
            subscriptions.append(bus.subscribe(user_id, room.facility_id, watch=room.watch))
        db.session.remove()  # do not hold a connection for the life of the socket
        facility_ids = {room.facility_id for room in rooms}
        with lock:
            hello: dict[str, Any] = {"type": "hello", "facility": rooms[0].slug}
            if several:
                hello = {"type": "hello", "facilities": [room.slug for room in rooms]}
            _send(ws, hello)
            for room in rooms:
                for message in grants.pending_messages(user_id, room.facility_id):
                    _send(ws, message)
        for subscription in subscriptions:
            threading.Thread(
                target=pump, args=(subscription,), name="ws-sender", daemon=True
            ).start()
        next_check = time.monotonic() + recheck_s
        while not closed.is_set():
            # The server is stopping, or the page missed events.
            ending = next((sub for sub in subscriptions if sub.closed.is_set()), None)
            if ending is not None:
                code, text = ending.close_reason
                with lock:
                    ws.close(reason=code, message=text)
                break
            raw = ws.receive(timeout=min(1.0, recheck_s))
            if time.monotonic() >= next_check:
                # Signed out, password changed, removed from a facility, or ended by an
                # operator: the page stops hearing about the facility's runs.
                allowed = _rooms_allowed(proof, user_id, rooms)
                if not allowed:
                    with lock:
                        _refuse(ws, "session_ended", "you were signed out or removed from "
                                "this facility; reload the page")
                    return
                if len(allowed) < len(rooms):
                    # A page of several: the user left one of them. The page reconnects
                    # (this is no refusal), without it, and goes on hearing the others.
                    with lock:
                        ws.close(reason=1000, message="your facilities changed")
                    return
                next_check = time.monotonic() + recheck_s
                renew()  # the page's slot under the per-user cap stays taken
            if raw is None:
                continue
            if not budget.spend(socket_id):
                # A flood (each grant.refuse reads the database): said, then closed.
                with lock:
                    _send(ws, {"type": "error", "code": "too_many_messages", "closing": True,
                               "message": "this page sent too many messages (at most "
                               f"{budget.allowed}); reload it"})
                    ws.close(reason=1008, message="too many messages")
                return
            reply = _handle(raw, user_id, facility_ids)
            if reply is not None:
                with lock:
                    _send(ws, reply)
    except (ConnectionClosed, OSError):
        pass  # the page went away (cleanly or with a broken pipe)
    finally:
        closed.set()
        budget.forget(socket_id)
        for subscription in subscriptions:
            subscription.close()
        db.session.remove()


def _handle(raw: str, user_id: int, facility_ids: set[int]) -> dict[str, Any] | None:
    try:
        # The app's reader (app.errors.BoundedJSON): JSON nested deeper than it can be read
        # is malformed JSON here too.
        message = current_app.json.loads(raw)
    except ValueError:
        return {"type": "error", "code": "invalid_message", "message": "send JSON objects"}
    if not isinstance(message, dict):
        return {"type": "error", "code": "invalid_message", "message": "send JSON objects"}
    if message.get("type") == "grant.refuse":
        grant_id = str(message.get("grant_id", ""))
        if UNSTORABLE_TEXT.search(grant_id):  # no prompt's id; the database refuses it
            return {"type": "error", "code": "not_found", "message": "no such prompt"}
        try:
            grant = db.session.get(Grant, grant_id)
            if grant is None or grant.user_id != user_id or grant.facility_id not in facility_ids:
                return {"type": "error", "code": "not_found", "message": "no such prompt"}
        finally:
            db.session.remove()
        extensions.grants().resolve(grant_id, "refused")
        return None
    if message.get("type") == "ping":
        return {"type": "pong"}
    return {
        "type": "error",
        "code": "unknown_message",
        "message": f"unknown message type {message.get('type')!r}",
    }
