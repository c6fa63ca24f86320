"""Caps on the answers the server reads for itself: past its cap an answer is not read.

A deadline bounds how long a call takes, not how much it reads: a service (or a token
endpoint) that answers with gigabytes inside the deadline would have them all held in
memory. The guarded transport (app.integrations.transport) hands every answer got in a
`with BodyCap(n):` block to that cap: one whose Content-Length is over it is refused before
its body is read, and one of unknown length (chunked, or until close) is cut off when what
was read passes it. Either way its connection is closed, not drained, and AnswerTooLarge is
raised. Script calls stream under their own cap (upstream.read) and are not under this one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import requests

from sandbox import size_in_words

KIB = 1024
MIB = 1024 * KIB
_CHUNK = 64 * KIB  # what a read of "the rest" is split into, so it is counted as it comes

_local = threading.local()


def current_cap() -> BodyCap | None:
    """The BodyCap of the `with cap:` block this thread is in, if any."""
    found: BodyCap | None = getattr(_local, "cap", None)
    return found


class AnswerTooLarge(requests.exceptions.RequestException):
    """An answer's body is over the cap of the BodyCap it was got under; `.limit` says the cap.

    Raised when its Content-Length says so (nothing of the body read) or when what was read
    passed the cap; its connection is closed either way.
    """

    def __init__(self, limit: int, **kwargs: Any) -> None:
        super().__init__(f"the answer is larger than {size_in_words(limit)}", **kwargs)
        self.limit = limit


class BodyCap:
    """At most `limit` bytes of each answer's body (as decoded) read in `with cap:` blocks."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._outer: BodyCap | None = None

    def __enter__(self) -> BodyCap:
        self._outer, _local.cap = current_cap(), self
        return self

    def __exit__(self, *_exc: object) -> None:
        _local.cap = self._outer

    def apply(self, response: requests.Response) -> requests.Response:
        """The response, its body now read only up to the cap; AnswerTooLarge (the connection
        closed unread) when its Content-Length is already over it."""
        # urllib3's reading of Content-Length: None when unknown, invalid or chunked, 0 for
        # answers that have no body (HEAD, 204, 304).
        length = getattr(response.raw, "length_remaining", None)
        if length is not None and length > self.limit:
            response.close()  # closes the connection: the rest must not be read to reuse it
            raise AnswerTooLarge(self.limit, request=response.request, response=response)
        response.raw = _Counted(response, self.limit)
        return response


class _Counted:
    """A response's urllib3 body counted as it is read (requests reads `stream`, and `read`
    to drain a redirect); past the cap the connection is closed and AnswerTooLarge raised.
    Everything else is the urllib3 response's own."""

    def __init__(self, response: requests.Response, limit: int) -> None:
        self._response = response
        self._raw = response.raw
        self._limit = limit
        self._read = 0

    def stream(
        self, amt: int | None = _CHUNK, decode_content: bool | None = None
    ) -> Iterator[bytes]:
        """The body in pieces of at most `amt` bytes (urllib3 bounds decoded pieces too)."""
        pieces = self._raw.stream(amt or _CHUNK, decode_content=decode_content)
        try:
            for piece in pieces:
                self._count(len(piece))
                yield piece
        finally:
            pieces.close()

    def read(
        self,
        amt: int | None = None,
        decode_content: bool | None = None,
        cache_content: bool = False,
    ) -> bytes:
        """Up to `amt` bytes of the body, or the rest of it (read in counted pieces)."""
        if amt is None:
            return b"".join(self.stream(_CHUNK, decode_content=decode_content))
        data: bytes = self._raw.read(
            amt, decode_content=decode_content, cache_content=cache_content
        )
        self._count(len(data))
        return data

    def _count(self, size: int) -> None:
        self._read += size
        if self._read > self._limit:
            self._raw.close()  # the connection too; unread, it must not go back to the pool
            self._raw.release_conn()  # its pool slot, and the deadline's hold on it
            raise AnswerTooLarge(
                self._limit, request=self._response.request, response=self._response
            )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)
