"""The Redis EventBus: a page connected to any web process hears events of runs anywhere.

Publishing is one PUBLISH on the (user, facility) channel (with the watch channel's,
one pipelined round trip). Each web process subscribes
to a channel while it holds at least one open page of that user in that facility, and
fans the messages out to those pages with the in-memory bus; so `has_listeners` asks
Redis how many processes listen on the channel (PUBSUB NUMSUB), wherever they are.
Run events published for watchers go on the facility's watch channel too, which a
process subscribes to while it holds an admin's page of that facility.
"""

from __future__ import annotations

import json
import threading

import redis

from app.distributed.pubsub import RedisListener
from app.events import InMemoryEventBus
from app.seams import Message, Subscription

# The close a page gets when this process lost Redis for a while (1012: service restart).
CATCH_UP = (1012, "events may have been missed while the server reconnected: catching up")


class _Page:
    """One open page: its local subscription, and the channel it keeps subscribed."""

    def __init__(self, bus: RedisEventBus, local: Subscription, user_id: int,
                 facility_id: int, watch: bool) -> None:
        self._bus = bus
        self._local = local
        self._key = (user_id, facility_id)
        self._watch = watch
        self.closed = local.closed  # set when the page must reconnect (close_all)

    @property
    def close_reason(self) -> tuple[int, str]:
        """The websocket close code and text the page gets when `closed` is set."""
        return self._local.close_reason

    def get(self, timeout: float | None = None) -> Message | None:
        """The next message, or None after `timeout` seconds."""
        return self._local.get(timeout)

    def close(self) -> None:
        """Stop receiving (the process unsubscribes when its last page of the key closes)."""
        self._bus.leave(self._local, *self._key, watch=self._watch)


class RedisEventBus:
    """Publishes over Redis pub/sub; delivers to the pages open in this process."""

    def __init__(self, client: redis.Redis, listener: RedisListener, *,
                 prefix: str = "scriptbox") -> None:
        self._client = client
        self._listener = listener
        self._prefix = prefix
        self._local = InMemoryEventBus()
        self._lock = threading.Lock()
        listener.on_reconnect(self._catch_up_pages)

    def channel(self, user_id: int, facility_id: int) -> str:
        """The Redis channel of (user, facility)."""
        return f"{self._prefix}:events:{user_id}:{facility_id}"

    def watch_channel(self, facility_id: int) -> str:
        """The Redis channel of the facility's watched run events."""
        return f"{self._prefix}:watch:{facility_id}"

    def publish(
        self, user_id: int, facility_id: int, message: Message, *, watchers: bool = False
    ) -> int:
        """Send to every open page of (user, facility), and with `watchers` to the facility's
        watching pages; how many web processes were reached on the user's channel."""
        encoded = json.dumps(message)
        if not watchers:
            return int(self._client.publish(self.channel(user_id, facility_id), encoded))
        # Both channels in one round trip (a pipeline without MULTI). The envelope wraps
        # the message as encoded once: a finished run's whole row is not encoded twice.
        envelope = f'{{"user_id": {int(user_id)}, "message": {encoded}}}'
        pipe = self._client.pipeline(transaction=False)
        pipe.publish(self.channel(user_id, facility_id), encoded)
        pipe.publish(self.watch_channel(facility_id), envelope)
        reached, _watching = pipe.execute()
        return int(reached)

    def subscribe(self, user_id: int, facility_id: int, *, watch: bool = False) -> Subscription:
        """Register an open page (returns once Redis delivers its channels here)."""
        # One lock around the Redis (un)subscribe too: a page opening while the last one
        # of the same key closes must not end unsubscribed.
        with self._lock:
            if not self._local.has_listeners(user_id, facility_id):
                self._listener.subscribe(
                    self.channel(user_id, facility_id),
                    lambda raw: self._deliver(user_id, facility_id, raw),
                )
            if watch and not self._local.has_watchers(facility_id):
                self._listener.subscribe(
                    self.watch_channel(facility_id),
                    lambda raw: self._deliver_watched(facility_id, raw),
                )
            local = self._local.subscribe(user_id, facility_id, watch=watch)
        return _Page(self, local, user_id, facility_id, watch)

    def _deliver(self, user_id: int, facility_id: int, raw: str) -> None:
        self._local.publish(user_id, facility_id, json.loads(raw))

    def _deliver_watched(self, facility_id: int, raw: str) -> None:
        envelope = json.loads(raw)
        self._local.publish_watchers(int(envelope["user_id"]), facility_id, envelope["message"])

    def leave(self, local: Subscription, user_id: int, facility_id: int, *,
              watch: bool = False) -> None:
        """Forget an open page; unsubscribe a channel when it was the last one here."""
        with self._lock:
            local.close()
            if not self._local.has_listeners(user_id, facility_id):
                self._listener.unsubscribe(self.channel(user_id, facility_id))
            if watch and not self._local.has_watchers(facility_id):
                self._listener.unsubscribe(self.watch_channel(facility_id))

    def close_all(self) -> None:
        """Tell the pages open in this process that it goes away (they reconnect elsewhere)."""
        self._local.close_all()

    def _catch_up_pages(self) -> None:
        """Messages published while Redis was away never reached this process: its pages
        reconnect, and a page that connects reads what it follows afresh (and is sent the
        prompts still pending), so none waits for an end or a prompt it missed."""
        self._local.close_all(CATCH_UP)

    def has_listeners(self, user_id: int, facility_id: int) -> bool:
        """True when some web process holds an open page of the user in the facility."""
        counts = self._client.pubsub_numsub(self.channel(user_id, facility_id))
        return any(int(count) > 0 for _channel, count in counts)
