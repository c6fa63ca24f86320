"""Bounds on what one client may send or hold: request bodies, open websockets per user
(counted in this process, or in Redis across web processes when SCRIPTBOX_REDIS_URL is set)
and requests waiting for their runs (per process: each holds one of its threads)."""

from __future__ import annotations

import contextlib
import io
import math
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any, BinaryIO, Protocol

from flask import Flask, current_app, request
from werkzeug.routing import IntegerConverter, Map
from werkzeug.wsgi import get_content_length

from app.db import MAX_INTEGER
from app.errors import RequestTooLarge, too_large_message


def _read_at_most(stream: BinaryIO, size: int) -> bytes:
    # A dechunking stream answers one chunk per read: loop until the end or `size`.
    buffer = bytearray()
    while len(buffer) < size:
        chunk = stream.read(size - len(buffer))
        if not chunk:
            break
        buffer += chunk
    return bytes(buffer)


def _refuse_large_bodies() -> None:
    # Checked before sign-in and before anything reads the body, so a declared 60 MB
    # upload costs the server nothing.
    limit = int(current_app.config["MAX_REQUEST_BYTES"])
    environ = request.environ
    # Read from the environ, not request.content_length: that is cached, and the
    # chunked case below gives the body a length.
    declared = get_content_length(environ)
    if declared is not None:
        if declared > limit:
            raise RequestTooLarge(too_large_message(limit))
        return
    if environ.get("wsgi.input_terminated"):
        # A chunked body has no length. Werkzeug would silently cut it at the limit (a
        # truncated JSON body reads as no body at all), so read one byte past the limit
        # here and hand the views the body with a length.
        data = _read_at_most(environ["wsgi.input"], limit + 1)
        if len(data) > limit:
            raise RequestTooLarge(too_large_message(limit))
        environ["wsgi.input"] = io.BytesIO(data)
        environ["CONTENT_LENGTH"] = str(len(data))
        environ.pop("HTTP_TRANSFER_ENCODING", None)  # else Werkzeug ignores the length
        del environ["wsgi.input_terminated"]


class Slots(Protocol):
    """Counts open websockets per user against a cap."""

    def acquire(self, user_id: int, cap: int) -> str | None:
        """A slot for user_id (a token to give back), or None when they hold `cap`."""

    def renew(self, user_id: int, token: str) -> None:
        """The page holding the slot is still open."""

    def release(self, user_id: int, token: str) -> None:
        """Give back a slot taken by acquire."""


class ConnectionSlots:
    """Counts open websockets per user in this process (the embedded default)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: Counter[int] = Counter()

    def acquire(self, user_id: int, cap: int) -> str | None:
        """See Slots."""
        with self._lock:
            if self._open[user_id] >= cap:
                return None
            self._open[user_id] += 1
            return "local"

    def renew(self, user_id: int, token: str) -> None:
        """See Slots (nothing lapses in one process)."""

    def release(self, user_id: int, token: str) -> None:
        """See Slots."""
        with self._lock:
            self._open[user_id] -= 1
            if self._open[user_id] <= 0:
                del self._open[user_id]


class WaitingRequests:
    """Requests this process holds in a run's `wait`, each on a server thread of its own:
    one user may hold `per_user` of them at once and everyone `total`, so one client's
    waits cannot take every thread and leave other requests unanswered. A request past
    either is answered at once, as with no `wait` (201, the run going on)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: Counter[int] = Counter()
        self._total = 0

    def held(self) -> int:
        """How many requests wait now."""
        with self._lock:
            return self._total

    @contextlib.contextmanager
    def hold(self, user_id: int, *, per_user: int, total: int | None) -> Iterator[bool]:
        """True, held until the block ends, when the user's request may wait now (`total`
        None: no cap on everyone's)."""
        with self._lock:
            allowed = self._held[user_id] < per_user and (total is None or self._total < total)
            if allowed:
                self._held[user_id] += 1
                self._total += 1
        try:
            yield allowed
        finally:
            if allowed:
                with self._lock:
                    self._total -= 1
                    self._held[user_id] -= 1
                    if self._held[user_id] <= 0:
                        del self._held[user_id]


def waiting_requests(app: Flask | None = None) -> WaitingRequests:
    """The app's count of requests waiting for their runs."""
    waiting: WaitingRequests = (app or current_app).extensions["scriptbox.waiting"]
    return waiting


class BoundedInt(IntegerConverter):
    """`<int:…>` path values that fit the database: a larger id is a 404, never a 500."""

    # At most 19 digits in the pattern itself: Werkzeug's matcher answers a failed `max`
    # check with 405 when a sibling rule takes other methods.
    regex = r"\d{1,19}"

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_INTEGER)
        super().__init__(url_map, *args, **kwargs)


def websocket_slots(app: Flask | None = None) -> Slots:
    """The app's websocket slot counter."""
    slots: Slots = (app or current_app).extensions["scriptbox.ws_slots"]
    return slots


def init_app(app: Flask) -> None:
    """Refuse large bodies first thing; bound path ids; count websockets per user.

    Call before the blueprints are registered: their rules pick the converter up then.
    """
    app.url_map.converters["int"] = BoundedInt
    app.before_request(_refuse_large_bodies)
    app.extensions["scriptbox.waiting"] = WaitingRequests()
    slots: Slots = ConnectionSlots()
    if app.config["REDIS_URL"]:  # every web process counts a user's pages in one place
        from app.distributed.redis_slots import RedisConnectionSlots
        from app.extensions import redis_client

        # A dead process's slots lapse after a minute (or a few missed re-checks).
        lease = max(60, math.ceil(6 * float(app.config["WS_RECHECK_S"])))
        slots = RedisConnectionSlots(
            redis_client(app), prefix=str(app.config["REDIS_PREFIX"]), lease_s=lease
        )
    app.extensions["scriptbox.ws_slots"] = slots
