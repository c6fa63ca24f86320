"""The production web server: gunicorn with threaded workers, a graceful stop, clean logs.

`scriptbox serve` runs the app under gunicorn's `gthread` workers, which hand flask-sock
the raw socket a websocket needs (each open page holds one thread). On SIGTERM a worker
stops accepting connections, runs the app's shutdown hooks (extensions.on_shutdown: the
run engine waits for its runs, then open pages are told the server is going away) and
exits once its connections are done. A request gunicorn cannot read (a request line or
headers over its limits) is answered in the API's JSON error shape under /api/ and
/hooks/ (app.server_errors). Logs never hold a query string (OAuth codes and
states travel in them) nor a webhook trigger's token (in its URL's path).
"""

from __future__ import annotations

import errno
import logging
import re
import select
import socket
import threading
from typing import Any

from flask import Flask
from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger
from gunicorn.http.parser import RequestParser
from gunicorn.workers.gthread import ThreadWorker
from werkzeug.serving import ThreadedWSGIServer

from app import db, extensions, sandboxes, server_errors

# Path without query (%(U)s), no referrer (%(f)s would carry the previous page's query).
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%(a)s"'
_QUERY = re.compile(r"(?<=[\w/.%~-])\?[^\s\"']+")


# A webhook trigger's URL carries its secret in the path (app.web.hooks), and so does a
# connect link's (app.web.connect): whoever holds it binds a sign-in to the link's user.
_PATH_TOKEN = re.compile(r"(/hooks/|/connect/)[^\s\"'?/]+")


def strip_query(text: str) -> str:
    """text with every URL query string (`/path?code=…` → `/path`) removed."""
    return _QUERY.sub("", text)


def redact(text: str) -> str:
    """text as logs may hold it: no query string, and `/hooks/<token>` as `/hooks/…`
    (`/connect/<token>` as `/connect/…`)."""
    return _PATH_TOKEN.sub("\\1…", strip_query(text))


class _NoQueries(logging.Filter):
    """Rewrites each record without query strings (gunicorn logs request URIs on errors)
    or webhook trigger and connect link tokens (Flask logs a failed request's path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # The cleaned line replaces the record's format and arguments, so the handler
        # does not format the message a second time.
        record.msg, record.args = redact(record.getMessage()), None
        return True


_REDACTING = _NoQueries()


def redact_app_logs(flask_app: Flask) -> None:
    """Put the filter on the handlers the app's own records reach (Flask's "Exception on
    /hooks/<token> [POST]", the views' warnings naming a path): a filter on a handler sees
    every record, a logger's only its own."""
    for handler in (*flask_app.logger.handlers, *logging.getLogger().handlers):
        handler.addFilter(_REDACTING)


class QueryFreeLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger with the query-string filter on the access and error logs."""

    def setup(self, cfg: Any) -> None:
        """Configure as gunicorn does, then add the filter."""
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            log.addFilter(_REDACTING)

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> Any:
        """The atoms ACCESS_LOG_FORMAT names. gunicorn's own also copy every request and
        response header and every environ entry into the dict, for `{name}i`-style atoms
        this format does not use; with that copy and each line formatted twice, the
        access log was a fifth of a health check's time (py-spy)."""
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        return {
            "h": environ.get("REMOTE_ADDR", "-"),
            "t": self.now(),
            "m": environ.get("REQUEST_METHOD"),
            "U": redact(environ.get("PATH_INFO") or ""),
            "H": environ.get("SERVER_PROTOCOL"),
            "s": status,
            "B": getattr(resp, "sent", None),
            "M": request_time.seconds * 1000 + request_time.microseconds // 1000,
            "a": environ.get("HTTP_USER_AGENT", "-"),
        }


# How long a thread that answered a kept-alive connection waits for the client's next
# request on it before giving the connection back to gunicorn's event loop.
LINGER_MS = 2.0


def next_request_within(conn: Any, milliseconds: float) -> bool:
    """True when the connection's next request is here or arrives within `milliseconds`."""
    if conn.parser.unreader.buf.getvalue():  # read ahead with the last body
        return True
    poller = select.poll()
    poller.register(conn.sock, select.POLLIN)
    return bool(poller.poll(milliseconds))


def unread_body_too_large(req: Any, limit: int) -> bool:
    """Whether gunicorn's request `req` declares a body longer than `limit` bytes."""
    length = getattr(getattr(req.body, "reader", None), "length", None)
    return isinstance(length, int) and length > limit


class GracefulWorker(ThreadWorker):  # type: ignore[misc]
    """A gthread worker that runs the app's shutdown hooks when told to stop (SIGTERM),
    and answers a client's next request on the thread that answered its last one."""

    _stopping: threading.Thread | None = None

    def handle(self, conn: Any) -> Any:
        """Serve a connection's request, then its next ones while they come at once.

        gunicorn hands a kept-alive connection back to its event loop after each request
        (a pipe wakes the loop, the socket goes into its poller and, once readable, to the
        thread pool again): under load that round cost about as much of the process as
        Flask did. A client that sends its next request within LINGER_MS is served here.
        """
        keepalive = super().handle(conn)
        while keepalive is True and self.alive and next_request_within(conn, LINGER_MS):
            keepalive = super().handle(conn)
        return keepalive

    def handle_request(self, req: Any, conn: Any) -> Any:
        """Serve one request; one whose body is refused unread closes its connection.

        A body declared larger than MAX_REQUEST_BYTES is answered 413 before anything
        reads it (app.web.limits). gunicorn said `Connection: keep-alive` all the same,
        then gave up draining the body (it drains at most 64 KiB) and closed the socket:
        a client's next request on its kept-alive connection failed with no answer.
        """
        if unread_body_too_large(req, int(self.app.flask_app.config["MAX_REQUEST_BYTES"])):
            req.must_close = True  # the answer then says `Connection: close`
        return super().handle_request(req, conn)

    def init_process(self) -> None:
        """Start the worker as gunicorn does, with a parser whose errors keep their path."""
        # Set in the worker process only (after the fork): gunicorn builds each
        # connection's parser itself and offers no setting for the request class.
        RequestParser.mesg_class = server_errors.PathKeepingRequest
        super().init_process()

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """gunicorn's answer to a request it could not read or serve (its status, its
        log lines), as JSON in the API's error shape under /api/ and /hooks/."""
        held = server_errors.HeldAnswer()
        super().handle_error(req, held, addr, exc)
        if held.written:
            answer = server_errors.json_answer(bytes(held.written), exc, req, self.cfg)
            try:
                util.write_nonblock(client, answer)  # as gunicorn sends its own
            except Exception:
                self.log.debug("Failed to send error message.")

    def handle_exit(self, sig: int, frame: Any) -> None:
        """Stop accepting (gunicorn) and let the app finish its work (shutdown hooks)."""
        super().handle_exit(sig, frame)
        if self._stopping is None:
            flask_app = self.app.flask_app
            timeout = float(self.cfg.graceful_timeout)
            # A thread, not the signal handler: the hooks wait for runs that need this
            # worker's event loop to keep serving their pages meanwhile.
            self._stopping = threading.Thread(
                target=extensions.shutdown,
                args=(flask_app,),
                kwargs={"timeout": timeout},
                name="scriptbox-shutdown",
            )
            self._stopping.start()

    def run(self) -> None:
        """Serve until stopped, then wait for the shutdown hooks to end."""
        super().run()
        if self._stopping is not None:
            self._stopping.join(timeout=float(self.cfg.graceful_timeout))


class ScriptboxServer(BaseApplication):  # type: ignore[misc]
    """gunicorn serving one already-built Scriptbox app."""

    def __init__(self, flask_app: Flask, options: dict[str, Any], *, on_ready: Any) -> None:
        self.flask_app = flask_app
        self.options = options
        self.on_ready = on_ready
        super().__init__()

    def load_config(self) -> None:
        """Apply our settings; nothing is read from gunicorn's own config files or env."""
        for key, value in self.options.items():
            self.cfg.set(key, value)
        self.cfg.set("when_ready", lambda _arbiter: self.on_ready())
        # In each worker, after the fork (threads do not survive one): start-up recovery
        # of runs a dead process left behind, then the run engine's heartbeat.
        self.cfg.set(
            "post_worker_init", lambda _worker: extensions.heartbeat(self.flask_app).start()
        )

    def load(self) -> Flask:
        """The WSGI app each worker serves."""
        return self.flask_app


def options(*, host: str, port: int, workers: int, threads: int,
            graceful_timeout: int) -> dict[str, Any]:
    """gunicorn's settings for `scriptbox serve`."""
    return {
        "bind": [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"],
        "workers": workers,
        "threads": threads,
        "worker_class": GracefulWorker,
        "graceful_timeout": graceful_timeout,
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": "info",
        "access_log_format": ACCESS_LOG_FORMAT,
        "logger_class": QueryFreeLogger,
        "proc_name": "scriptbox",
        "control_socket_disable": True,  # no unix socket left in $HOME
    }


def cannot_listen(host: str, port: int) -> str | None:
    """Why `serve` could not listen on host:port now, in one line; None when it can.

    Tried as gunicorn binds (SO_REUSEADDR) before anything else starts: a port in use
    was five retries of gunicorn's errors and "Can't connect", after the migrations and
    the demo data, and never said that --port picks another one.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError:
        return None  # a name that does not resolve: gunicorn's own error says so
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"{host}:{port} is in use (another server listens there): stop it, "
                    "or serve on another port with --port"
                )
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def fit_waiting(flask_app: Flask, *, threads: int) -> int:
    """Unless the operator set it, requests waiting for their runs may hold half the
    threads, leaving the rest to every other request; the cap in force."""
    if flask_app.config["MAX_WAITING_REQUESTS"] is None:
        flask_app.config["MAX_WAITING_REQUESTS"] = max(1, threads // 2)
    return int(flask_app.config["MAX_WAITING_REQUESTS"])


def serve(
    flask_app: Flask,
    *,
    host: str,
    port: int,
    workers: int,
    threads: int,
    graceful_timeout: int,
    on_ready: Any,
) -> None:
    """Serve flask_app with gunicorn until SIGTERM (graceful) or SIGINT (quick)."""
    # Connections made while building the app (migrations, demo data) must not be
    # shared with forked workers: each worker opens its own, as many as its threads need.
    db.fit_pool(flask_app, threads=threads)
    # Nor its sandbox (--demo publishes its scripts, checked in a worker): its zygote
    # answers the process that started it, so each worker starts its own.
    sandboxes.release_executor(flask_app)
    fit_waiting(flask_app, threads=threads)
    redact_app_logs(flask_app)
    settings = options(host=host, port=port, workers=workers, threads=threads,
                       graceful_timeout=graceful_timeout)
    ScriptboxServer(flask_app, settings, on_ready=on_ready).run()


def serve_debug(flask_app: Flask, *, host: str, port: int, on_ready: Any) -> None:
    """The development server (werkzeug, threaded), with the same query-free log."""
    logging.getLogger("werkzeug").addFilter(_REDACTING)
    redact_app_logs(flask_app)
    server = ThreadedWSGIServer(host, port, flask_app)
    server.daemon_threads = True  # open websockets must not keep Ctrl-C from stopping it
    on_ready()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        extensions.shutdown(flask_app, timeout=0)
