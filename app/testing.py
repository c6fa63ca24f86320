"""A browserless client for a live Scriptbox: a signed session cookie, JSON API, websocket.

Support code for the test suite and the benchmarks (like app.devprovider.testing); the
served app never imports it.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any, cast

import requests
import simple_websocket
from flask import Flask, current_app, has_app_context
from flask.testing import FlaskClient

from app import db
from app.models import User
from app.services import sessions


def signed_in_session(app: Flask, user_id: int) -> dict[str, Any]:
    """The contents of a signed-in session cookie for user_id, recorded on the server.

    Inside the app's context the test's own session records it (the user may be only
    flushed yet) and commits; elsewhere a short-lived session does.
    """
    # `current_app` is a proxy (typed as the app): the app behind it, to compare.
    if has_app_context() and cast(Any, current_app)._get_current_object() is app:
        session = db.session()
        user = session.get(User, user_id)
        assert user is not None, f"no user {user_id}"
        secret = sessions.start_session(
            session, user=user, lifetime=app.permanent_session_lifetime
        )
        session.commit()
        return {"user_id": user_id, "csrf": secrets.token_urlsafe(16), "sid": secret}
    with db.session_factory(app)() as session:
        user = session.get(User, user_id)
        assert user is not None, f"no user {user_id}"
        secret = sessions.start_session(
            session, user=user, lifetime=app.permanent_session_lifetime
        )
        session.commit()
    return {"user_id": user_id, "csrf": secrets.token_urlsafe(16), "sid": secret}


class SignedInClient:
    """Flask's test client signed in as one user, sending the CSRF header with each call
    (no live server needed)."""

    def __init__(self, app: Flask, user_id: int) -> None:
        self.client: FlaskClient = app.test_client()
        values = signed_in_session(app, user_id)
        self.csrf = values["csrf"]
        with self.client.session_transaction() as cookie:
            cookie.update(values)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """`method path` with the session cookie and the CSRF header."""
        return self.client.open(path, method=method, headers={"X-CSRF-Token": self.csrf},
                                **kwargs)


class WebClient:
    """Plays one browser of one user against a LiveServer."""

    def __init__(self, app: Flask, base_url: str, user_id: int) -> None:
        self.base_url = base_url
        values = signed_in_session(app, user_id)
        self.csrf = values["csrf"]
        self.sid = values["sid"]
        serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
        cookie = serializer.dumps(values)
        self.http = requests.Session()
        self.http.cookies.set("session", cookie)
        self.cookie = f"session={cookie}"

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call the JSON API with the session cookie and CSRF header."""
        headers = {"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        return self.http.request(
            method, self.base_url + path, headers=headers, timeout=30, **kwargs
        )

    def post_form(self, path: str, data: dict[str, str]) -> requests.Response:
        """Submit a form as a browser would (with the CSRF field)."""
        return self.http.post(
            self.base_url + path, data={"csrf_token": self.csrf, **data}, timeout=30
        )

    def websocket(
        self, slug: str, origin: str | None = None, *, also: tuple[str, ...] = ()
    ) -> Socket:
        """Open the page websocket for facility `slug` (and the facilities `also`, as a page
        of several, such as Settings, does)."""
        query = "&".join(f"facility={each}" for each in (slug, *also))
        ws_url = self.base_url.replace("http://", "ws://") + f"/ws?{query}"
        headers = {"Cookie": self.cookie, "Origin": origin or self.base_url}
        return Socket(_Client.connect(ws_url, headers=headers, thread_class=_DaemonThread))


def token_websocket(base_url: str, slug: str, token: str) -> Socket:
    """The page websocket for facility `slug`, opened with an API token (no cookie), as a
    program that is no browser may open it."""
    ws_url = base_url.replace("http://", "ws://") + f"/ws?facility={slug}"
    headers = {"Authorization": f"Bearer {token}", "Origin": base_url}
    return Socket(_Client.connect(ws_url, headers=headers, thread_class=_DaemonThread))


class _Client(simple_websocket.Client):  # type: ignore[misc]  # untyped base
    """simple-websocket's client, keeping a message that came in with the handshake.

    Its handshake reads whatever the socket holds, takes the 101 response and leaves the
    rest (the server's first message, when it is quick) queued until more data arrives:
    that message was lost. Handling the queued events before the reader thread starts
    keeps it.
    """

    connected: bool  # set by simple-websocket's handshake

    def handshake(self) -> None:
        super().handshake()
        if not self.connected:
            return
        # A server that refuses a page sends its error and closes at once: the close may
        # come with the handshake. The handshake still succeeded (the constructor would
        # raise otherwise); the reader thread then finds the socket closed, and the error
        # stays readable in the input buffer.
        self._handle_events()
        self.connected = True


class _DaemonThread(threading.Thread):
    """simple-websocket's reader thread, as a daemon: an unclosed test socket must not keep
    the process from exiting."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.daemon = True


class Socket:
    """A websocket that waits for messages of a given type."""

    def __init__(self, ws: simple_websocket.Client) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any]) -> None:
        """Send one JSON message."""
        self.ws.send(json.dumps(message))

    def next(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """The next message, or None after timeout."""
        try:
            raw = self.ws.receive(timeout=timeout)
        except simple_websocket.ConnectionClosed:
            return None
        if raw is None:
            return None
        message: dict[str, Any] = json.loads(raw)
        self.seen.append(message)
        return message

    def wait_for(self, kind: str, timeout: float = 15.0, **match: Any) -> dict[str, Any]:
        """The first message of `kind` whose fields equal `match`; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        for message in self.seen:
            if message.get("type") == kind and all(message.get(k) == v for k, v in match.items()):
                self.seen.remove(message)
                return message
        while (remaining := deadline - time.monotonic()) > 0:
            heard = self.next(remaining)
            if heard is None:
                continue
            if heard.get("type") == kind and all(heard.get(k) == v for k, v in match.items()):
                self.seen.remove(heard)
                return heard
        raise AssertionError(f"no {kind} {match} within {timeout}s; saw {self.seen}")

    def close(self) -> None:
        """Close the socket."""
        self.ws.close()


def _whole_static_files(app: Flask) -> Any:
    """`app`, with static files (and the site icon) read whole and closed before they are
    sent.

    Werkzeug's development server leaves a streamed file open when the browser drops the
    connection mid-response (its clean-up reads the dead socket first and raises), and the
    file's ResourceWarning then surfaces in an unrelated test. Static files are small.
    """

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        body = app(environ, start_response)
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/static/") and path != "/favicon.ico":
            return body
        try:
            return [b"".join(body)]
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    return wsgi


class LiveServer:
    """A Scriptbox app served over real HTTP on loopback (threaded, like `scriptbox serve`)."""

    def __init__(self, app: Flask) -> None:
        from werkzeug.serving import ThreadedWSGIServer

        self.app = app
        self._server = ThreadedWSGIServer("127.0.0.1", 0, _whole_static_files(app))
        self._server.daemon_threads = True  # open websockets must not keep the process alive
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        app.config["PUBLIC_URL"] = self.url  # OAuth redirect URIs and the websocket origin
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


class RoundTrips:
    """Counts what a stretch of code costs beyond its own CPU: SQL statements and commits on
    one engine, Redis commands (a pipeline is one), and threads started; each split by
    whether the thread that made it is in `worker_threads` ("worker") or not ("web").

    For the benchmarks and the statement-ceiling tests: while it is open it patches
    `redis.Redis.execute_command`, `redis.client.Pipeline.execute` and
    `threading.Thread.start` for the whole process.
    """

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.worker_threads: set[int] = set()
        self.counts: dict[str, int] = {}
        self.statements: list[str] = []
        self._lock = threading.Lock()
        self._undo: list[Any] = []

    def _add(self, what: str) -> None:
        side = "worker" if threading.get_ident() in self.worker_threads else "web"
        with self._lock:
            self.counts[f"{side}_{what}"] = self.counts.get(f"{side}_{what}", 0) + 1

    def __enter__(self) -> RoundTrips:
        import redis
        from sqlalchemy import event

        def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
            self._add("sql")
            with self._lock:
                self.statements.append(sql.split("\n")[0][:120])

        def commit(_conn: Any) -> None:
            self._add("commits")

        event.listen(self._engine, "before_cursor_execute", statement)
        event.listen(self._engine, "commit", commit)
        self._undo.append(lambda: event.remove(self._engine, "before_cursor_execute", statement))
        self._undo.append(lambda: event.remove(self._engine, "commit", commit))
        for owner, name, what in (
            (redis.Redis, "execute_command", "redis"),
            (redis.client.Pipeline, "execute", "redis"),
            (threading.Thread, "start", "threads"),
        ):
            self._wrap(owner, name, what)
        return self

    def _wrap(self, owner: Any, name: str, what: str) -> None:
        original = owner.__dict__[name]
        counter = self

        def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            if what != "redis" or not isinstance(self, redis_pipeline()) or name == "execute":
                counter._add(what)
            return original(self, *args, **kwargs)

        setattr(owner, name, counted)
        self._undo.append(lambda: setattr(owner, name, original))

    def __exit__(self, *_exc: object) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def per(self, runs: int) -> dict[str, float]:
        """Each count divided by `runs`, rounded to two places."""
        return {key: round(value / runs, 2) for key, value in sorted(self.counts.items())}


def redis_pipeline() -> type:
    """redis-py's Pipeline class (its queued commands are one round trip, at `execute`)."""
    import redis

    pipeline: type = redis.client.Pipeline
    return pipeline
