"""A webhook receiver for tests: an HTTP server on loopback that records each POST it
takes and answers as told."""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

WAIT_S = 60.0


@dataclass
class Answer:
    """How the listener answers one request: a status, held back until `release` is set."""

    status: int = 200
    release: threading.Event | None = None


@dataclass(frozen=True)
class Received:
    """One request the listener took: what came, what it answered, who sent it, when."""

    headers: dict[str, str]
    body: bytes
    status: int
    sender: int | None  # the process holding the connection's other end, if looked up
    at: float  # time.monotonic() on arrival


@dataclass
class Listener:
    """Records each POST on `received`; answers with `answers` in turn, then 200 at once.

    With `find_sender`, each request also notes which local process sent it (Linux's
    socket table), so a test can tell a worker's delivery from the web process's.
    """

    host: str = "127.0.0.1"
    find_sender: bool = False
    answers: list[Answer] = field(default_factory=list)
    received: queue.Queue[Received] = field(default_factory=queue.Queue)
    url: str = ""
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    def start(self) -> Listener:
        """Serve in a daemon thread on a free port."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                answer = owner.answers.pop(0) if owner.answers else Answer()
                # Looked up now: the sender's socket is open while it waits for the answer.
                sender = (
                    sender_pid(self.client_address[1], owner.port) if owner.find_sender else None
                )
                owner.received.put(
                    Received(
                        headers=dict(self.headers),
                        body=body,
                        status=answer.status,
                        sender=sender,
                        at=time.monotonic(),
                    )
                )
                if answer.release is not None:
                    answer.release.wait(WAIT_S)
                self.send_response(answer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_port
        self.url = f"http://{self.host}:{self.port}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def answer_with(self, *statuses: int) -> None:
        """Answer the next requests with `statuses`, in turn."""
        self.answers.extend(Answer(status) for status in statuses)

    def next(self, timeout: float = WAIT_S) -> Received:
        """The next request received; AssertionError after `timeout`."""
        try:
            return self.received.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no request reached the listener within {timeout}s") from None

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def sender_pid(client_port: int, server_port: int) -> int | None:
    """The process holding the client end of a loopback TCP connection (Linux /proc)."""
    local, remote = f"0100007F:{client_port:04X}", f"0100007F:{server_port:04X}"
    inode = next(
        (
            fields[9]
            for fields in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines())
            if fields[1:3] == [local, remote]
        ),
        None,
    )
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in (entry for entry in os.listdir("/proc") if entry.isdigit()):
        try:
            if any(
                os.readlink(f"/proc/{pid}/fd/{fd}") == target
                for fd in os.listdir(f"/proc/{pid}/fd")
            ):
                return int(pid)
        except OSError:
            continue  # a process that just ended
    return None
