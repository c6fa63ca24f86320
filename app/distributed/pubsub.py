"""One Redis pub/sub connection per process, read by one thread, shared by the bus and signals.

Channels are subscribed while something in this process listens on them; `subscribe`
returns once Redis confirmed the subscription, so a message published after it returns
is never missed. The connection is fork-aware (a Celery child starts its own) and
survives a Redis restart: redis-py re-subscribes on reconnect, and the `on_reconnect`
hooks run so waiters can re-read what they might have missed meanwhile.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import redis

log = logging.getLogger(__name__)
Handler = Callable[[str], None]
_CONFIRM_S = 10.0
_RETRY_S = 0.5


class RedisListener:
    """Routes messages of subscribed channels to their handler, in a background thread."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._handlers: dict[str, Handler] = {}
        self._confirmed: dict[str, threading.Event] = {}
        self._reconnect_hooks: list[Callable[[], None]] = []
        self._pid = -1
        self._pubsub: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def on_reconnect(self, hook: Callable[[], None]) -> None:
        """Call `hook()` after the connection to Redis came back."""
        self._reconnect_hooks.append(hook)

    def subscribe(self, channel: str, handler: Handler) -> None:
        """Deliver the channel's messages to `handler`; returns once Redis confirmed it."""
        with self._lock:
            self._ensure_started()
            self._handlers[channel] = handler
            confirmed = self._confirmed.setdefault(channel, threading.Event())
            self._pubsub.subscribe(channel)
        if not confirmed.wait(_CONFIRM_S):
            raise redis.ConnectionError(f"Redis did not confirm the subscription to {channel}")

    def unsubscribe(self, channel: str) -> None:
        """Stop listening on the channel."""
        with self._lock:
            if self._handlers.pop(channel, None) is None or self._pid != os.getpid():
                return
            self._confirmed.pop(channel, None)
            self._pubsub.unsubscribe(channel)

    def close(self) -> None:
        """Stop the reading thread and close the connection (tests and shutdown)."""
        self._stop.set()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(5)
            self._pubsub.close()

    def _ensure_started(self) -> None:
        # A forked child inherits neither the thread nor a usable socket: start afresh.
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._handlers.clear()
        self._confirmed.clear()
        # Through a Callable: redis-py typed `pubsub()` only lately (8.2), and strict mypy
        # must pass with the older releases as with the newer.
        open_pubsub: Callable[[], Any] = self._client.pubsub
        self._pubsub = open_pubsub()
        self._thread = threading.Thread(target=self._loop, args=(self._pubsub,), daemon=True,
                                        name="redis-listener")
        self._thread.start()

    def _loop(self, pubsub: Any) -> None:
        broken = False
        while not self._stop.is_set():
            try:
                message = pubsub.get_message(timeout=0.5)
            except (redis.ConnectionError, redis.TimeoutError, OSError, ValueError):
                # ValueError: redis-py's reader on a socket closed under it (a reset).
                if not broken:
                    log.warning("lost the Redis pub/sub connection; reconnecting")
                broken = True
                self._stop.wait(_RETRY_S)
                continue
            if broken:
                broken = False
                log.warning("Redis pub/sub connection is back")
                for hook in self._reconnect_hooks:
                    hook()
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = _text(message["channel"])
        if message["type"] == "subscribe":
            with self._lock:
                event = self._confirmed.get(channel)
            if event is not None:
                event.set()
            return
        if message["type"] != "message":
            return
        with self._lock:
            handler = self._handlers.get(channel)
        if handler is None:
            return
        try:
            handler(_text(message["data"]))
        except Exception:  # one bad message must not stop the listener
            log.exception("handling a message on %s failed", channel)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
