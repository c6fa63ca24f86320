"""The answers gunicorn itself gives to a request it cannot read, in the API's words.

A request line over gunicorn's limit, too many or too large headers, or a head that is
not HTTP never reaches Flask: gunicorn answers with its own HTML page. Under /api/ and
/hooks/, where every other error is `{"error": {"code", "message"}}` (app.errors), a
program then got HTML it could not read, saying nothing of what to change. gunicorn
still picks the status and logs (GracefulWorker.handle_error); this module says which
path the request was for and writes the answer.
"""

from __future__ import annotations

import json
from typing import Any

from gunicorn.http.errors import LimitRequestHeaders, LimitRequestLine, ParseException
from gunicorn.http.message import Request

# The paths whose errors are JSON (app.errors._wants_json says the same for Flask's).
JSON_PREFIXES = ("/api/", "/hooks/")
# Enough of the head to hold a method and the start of any path.
_HEAD_KEPT = 2048


class PathKeepingRequest(Request):  # type: ignore[misc]
    """gunicorn's request, which on a parse error leaves on the error the path it was for
    (`exc.path`, None when the request line was not read that far) and whether the
    client asked for JSON (`exc.wants_json`)."""

    _head = b""

    def read_into(self, unreader: Any, buf: bytearray, stop: bool = False) -> None:
        """Read as gunicorn does; keep the head's start while the request line is read."""
        super().read_into(unreader, buf, stop)
        if self.uri is None:
            self._head = bytes(buf[:_HEAD_KEPT])

    def parse(self, unreader: Any) -> Any:
        """Parse as gunicorn does; a parse error carries what its answer needs."""
        try:
            return super().parse(unreader)
        except ParseException as exc:
            exc.path = self.path if self.path is not None else path_of(self._head)
            exc.wants_json = any(
                name == "ACCEPT" and "application/json" in value
                for name, value in getattr(self, "headers", None) or ()
            )
            raise


def path_of(head: bytes) -> str | None:
    """The path of the request line that `head` starts with, even cut short; None when
    the line does not get that far."""
    parts = head.lstrip(b"\r\n").split(b"\r\n", 1)[0].split(b" ", 2)
    if len(parts) < 2 or not parts[1].startswith(b"/"):
        return None
    return parts[1].split(b"?", 1)[0].decode("latin-1")


def message(exc: BaseException, status: int, reason: str, cfg: Any) -> tuple[str, str]:
    """(code, message in words saying what to do) for gunicorn's answer `status`."""
    if isinstance(exc, LimitRequestLine):
        return "request_line_too_long", (
            f"the request line is longer than {cfg.limit_request_line} bytes: "
            "send fewer or shorter query parameters (or a shorter path)"
        )
    if isinstance(exc, LimitRequestHeaders):
        return "request_headers_too_large", (
            f"the request's headers are too many or too large (at most "
            f"{cfg.limit_request_fields} headers of {cfg.limit_request_field_size} bytes "
            "each): send fewer or shorter headers (cookies included)"
        )
    if status == 400:
        return "bad_request", (
            "the request is not well-formed HTTP (its request line, a header or its "
            "chunked body cannot be read): send a valid HTTP/1.1 request, e.g. with an "
            "HTTP client library"
        )
    if status >= 500:
        return "server_error", (
            f"the server could not answer the request ({reason}): try again later, or "
            "ask the operator to look at the server's log"
        )
    return reason.lower().replace(" ", "_"), f"the server refused the request ({reason})"


def json_answer(answer: bytes, exc: BaseException, req: Any, cfg: Any) -> bytes:
    """gunicorn's error answer `answer` (bytes as it would send them), as JSON in the
    API's error shape when the request was for /api/ or /hooks/ (or, with its path
    unread, asked for JSON); else `answer` unchanged."""
    path = getattr(req, "path", None) or getattr(exc, "path", None)
    if path is not None:
        wanted = path.startswith(JSON_PREFIXES)
    else:
        wanted = bool(getattr(exc, "wants_json", False))
    status_line = answer.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
    if not wanted or len(status_line) < 3 or not status_line[1].isdigit():
        return answer
    status, reason = int(status_line[1]), status_line[2]
    code, words = message(exc, status, reason, cfg)
    body = json.dumps({"error": {"code": code, "message": words}}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class HeldAnswer:
    """Stands for the client's socket while gunicorn writes its error answer, so the
    answer can be rewritten before it is sent (gunicorn's util.write_error writes it
    whole, with sendall)."""

    def __init__(self) -> None:
        self.written = bytearray()

    def gettimeout(self) -> float:
        """Non-blocking, so gunicorn does not switch the (absent) socket's mode."""
        return 0.0

    def sendall(self, data: bytes) -> None:
        """Keep what gunicorn sends."""
        self.written += data
