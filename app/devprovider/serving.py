"""serve_in_thread: run a WSGI app on a loopback port in a background thread."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


class _QuietHandler(WSGIRequestHandler):
    """Request handler that does not log every request (errors are still logged)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        """Skip the per-request access log line."""


class RunningServer:
    """A server started by serve_in_thread; a context manager that shuts it down."""

    def __init__(self, server: BaseWSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        host = f"[{server.host}]" if ":" in server.host else server.host
        self.port: int = server.server_port
        self.url = f"http://{host}:{self.port}"

    def shutdown(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"RunningServer({self.url!r})"


def serve_in_thread(
    app: WSGIApplication, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True
) -> RunningServer:
    """Serve app with Werkzeug's threaded server on host:port (0 = any free port)."""
    handler = _QuietHandler if quiet else WSGIRequestHandler
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    # A short poll interval makes shutdown() return promptly (the default waits 0.5 s).
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"devprovider:{server.port}",
        daemon=True,
    )
    thread.start()
    return RunningServer(server, thread)
