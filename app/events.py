"""The in-memory EventBus: pushes JSON messages to every open page of a user in a facility.

Embedded default for one process (a Redis bus would implement the same `EventBus`).
Each websocket connection subscribes with its user and facility (and, for an admin's
page, watches the facility's run events); publishers never learn who is listening, only
whether anyone is.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import defaultdict

from app.seams import Message

_Key = tuple[int, int]  # (user_id, facility_id)
GOING_AWAY = (1001, "the server is restarting")


class Subscription:
    """One open page: a bounded queue of messages for it."""

    def __init__(self, hub: InMemoryEventBus, key: _Key, *, watch: bool = False) -> None:
        self._hub = hub
        self.key = key
        self.watch = watch
        self.queue: queue.Queue[Message] = queue.Queue(maxsize=1000)
        self.closed = threading.Event()  # set when the page must reconnect
        self.close_reason = GOING_AWAY

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
        self._watchers: dict[int, set[Subscription]] = defaultdict(set)  # by facility

    def subscribe(self, user_id: int, facility_id: int, *, watch: bool = False) -> Subscription:
        """Register an open page; `watch`: it also hears the facility's watched messages."""
        sub = Subscription(self, (user_id, facility_id), watch=watch)
        with self._lock:
            self._subs[sub.key].add(sub)
            if watch:
                self._watchers[facility_id].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget an open page."""
        with self._lock:
            subs = self._subs.get(sub.key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.key]
            watching = self._watchers.get(sub.key[1])
            if watching is not None:
                watching.discard(sub)
                if not watching:
                    del self._watchers[sub.key[1]]

    def close_all(self, reason: tuple[int, str] = GOING_AWAY) -> None:
        """Tell every open page to reconnect, by default because the server is going away
        (a shutdown hook); `reason` is the websocket close code and text they get."""
        with self._lock:
            subs = [sub for group in self._subs.values() for sub in group]
        for sub in subs:
            sub.close_reason = reason
            sub.closed.set()

    def has_listeners(self, user_id: int, facility_id: int) -> bool:
        """True when the user has at least one open page in the facility."""
        with self._lock:
            return bool(self._subs.get((user_id, facility_id)))

    def has_watchers(self, facility_id: int) -> bool:
        """True when some open page watches the facility."""
        with self._lock:
            return bool(self._watchers.get(facility_id))

    def publish(
        self, user_id: int, facility_id: int, message: Message, *, watchers: bool = False
    ) -> int:
        """Send message to every open page of the user in the facility (and with `watchers`
        to the facility's watching pages); returns how many of the user's pages."""
        with self._lock:
            targets = list(self._subs.get((user_id, facility_id), ()))
        _put(targets, message)
        if watchers:
            self.publish_watchers(user_id, facility_id, message)
        return len(targets)

    def publish_watchers(self, user_id: int, facility_id: int, message: Message) -> None:
        """Send a message about `user_id`'s run to the facility's watching pages of others
        (the user's own pages hear it on their own key, once)."""
        with self._lock:
            targets = [s for s in self._watchers.get(facility_id, ()) if s.key[0] != user_id]
        _put(targets, message)


def _put(targets: list[Subscription], message: Message) -> None:
    for sub in targets:
        # A page that stopped reading loses messages; it never blocks the run.
        with contextlib.suppress(queue.Full):
            sub.queue.put_nowait(message)
