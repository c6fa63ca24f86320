"""The in-memory EventBus: pushes JSON messages to every open page of a user in a facility.

Embedded default for one process (a Redis bus would implement the same `EventBus`).
Each websocket connection subscribes with its user and facility; publishers never learn
who is listening, only whether anyone is.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import defaultdict

from app.seams import Message

_Key = tuple[int, int]  # (user_id, facility_id)


class Subscription:
    """One open page: a bounded queue of messages for it."""

    def __init__(self, hub: InMemoryEventBus, key: _Key) -> None:
        self._hub = hub
        self.key = key
        self.queue: queue.Queue[Message] = queue.Queue(maxsize=1000)
        self.closed = threading.Event()  # set when the server goes away

    def get(self, timeout: float | None = None) -> Message | None:
        """The next message, or None after `timeout` seconds."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        """Stop receiving."""
        self._hub.unsubscribe(self)


class InMemoryEventBus:
    """Fan-out of messages to the subscriptions of (user, facility)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[_Key, set[Subscription]] = defaultdict(set)

    def subscribe(self, user_id: int, facility_id: int) -> Subscription:
        """Register an open page."""
        sub = Subscription(self, (user_id, facility_id))
        with self._lock:
            self._subs[sub.key].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget an open page."""
        with self._lock:
            subs = self._subs.get(sub.key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.key]

    def close_all(self) -> None:
        """Tell every open page the server is going away (a shutdown hook)."""
        with self._lock:
            subs = [sub for group in self._subs.values() for sub in group]
        for sub in subs:
            sub.closed.set()

    def has_listeners(self, user_id: int, facility_id: int) -> bool:
        """True when the user has at least one open page in the facility."""
        with self._lock:
            return bool(self._subs.get((user_id, facility_id)))

    def publish(self, user_id: int, facility_id: int, message: Message) -> int:
        """Send message to every open page of the user in the facility; returns how many."""
        with self._lock:
            targets = list(self._subs.get((user_id, facility_id), ()))
        for sub in targets:
            # A page that stopped reading loses messages; it never blocks the run.
            with contextlib.suppress(queue.Full):
                sub.queue.put_nowait(message)
        return len(targets)
