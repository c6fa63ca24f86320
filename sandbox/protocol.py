"""Length-prefixed JSON frames on the stream socket between the host and one worker.

JSON, never pickle: the worker runs hostile code, so nothing it sends may be able to
execute anything in the host. Frames are capped so a worker cannot make the host
allocate without bound.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from typing import Any

_HEADER = struct.Struct("!I")
DEFAULT_MAX_FRAME = 4 * 1024 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not a well-formed frame."""


class FrameTooLarge(ProtocolError):
    """The peer announced a frame larger than the receiver accepts."""


def encode(message: dict[str, Any]) -> bytes:
    """Serialize one message to a frame."""
    # surrogatepass here and in _decode: a lone surrogate in a script's text or input
    # must cross as it is, not crash the sender.
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    data = text.encode("utf-8", "surrogatepass")
    return _HEADER.pack(len(data)) + data


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    """Send one message as a frame."""
    sock.sendall(encode(message))


def _decode(data: bytes) -> dict[str, Any]:
    try:
        message = json.loads(data.decode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"malformed frame: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("t"), str):
        raise ProtocolError("frame is not a typed message")
    return message


def recv_blocking(sock: socket.socket, max_frame: int = DEFAULT_MAX_FRAME) -> dict[str, Any] | None:
    """Read one message, blocking; None at end of stream (used inside the worker)."""
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > max_frame:
        raise FrameTooLarge(f"frame of {size} bytes exceeds {max_frame}")
    body = _recv_exact(sock, size)
    if body is None:
        raise ProtocolError("stream ended inside a frame")
    return _decode(body)


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            return None if not chunks else bytes(chunks)
        chunks += chunk
    return bytes(chunks)


class FrameReader:
    """Reads frames with a timeout, keeping partial frames between calls (host side)."""

    def __init__(self, sock: socket.socket, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self.max_frame = max_frame

    def _take(self) -> dict[str, Any] | None:
        if len(self._buffer) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self._buffer)
        if size > self.max_frame:
            raise FrameTooLarge(f"frame of {size} bytes exceeds {self.max_frame}")
        end = _HEADER.size + size
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[_HEADER.size : end])
        del self._buffer[:end]
        return _decode(body)

    def read(self, timeout: float) -> dict[str, Any] | None:
        """Return the next message; None on end of stream; raise TimeoutError once
        `timeout` seconds have passed in all (a peer that trickles a frame byte by byte
        does not get a new timeout with each byte)."""
        deadline = time.monotonic() + timeout
        while True:
            message = self._take()
            if message is not None:
                return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(1 << 16)
            except TimeoutError:
                raise
            except OSError:
                return None
            if not chunk:
                return None
            self._buffer += chunk
