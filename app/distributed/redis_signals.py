"""The Redis GrantSignals: a run waiting in any process learns how its grant ended.

`notify` stores the outcome under a key (for a waiter that starts listening late) and
publishes it; every process listens on one channel and wakes its local waiters. The
same channel carries cancellations, so cancelling a run reaches the worker that runs it
(`on_cancel` hooks stop its sandbox at once, not at the next heartbeat). After a Redis
restart every waiter wakes with no outcome, so the grant coordinator re-reads the
database instead of sleeping through a signal that was lost.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import redis

from app.distributed.pubsub import RedisListener
from app.seams import GrantOutcome

_CANCELLED = GrantOutcome("cancelled")
_KEEP_S = 3600  # a stored outcome outlives any prompt (GRANT_TIMEOUT_S) that could wait for it
_RECENT = 10_000
_OUTAGE_RETRY_S = 1.0  # outcomes remembered in memory for waiters that arrive just after them


class RedisGrantSignals:
    """Outcomes and cancellations over Redis; a Condition wakes the waiters of this process."""

    def __init__(self, client: redis.Redis, listener: RedisListener, *,
                 prefix: str = "scriptbox") -> None:
        self._client = client
        self._listener = listener
        self._prefix = prefix
        self._channel = f"{prefix}:grant-signals"
        self._cond = threading.Condition()
        self._outcomes: OrderedDict[str, GrantOutcome] = OrderedDict()
        self._cancelled: OrderedDict[str, None] = OrderedDict()
        self._generation = 0
        self._pid = -1
        self._cancel_hooks: list[Callable[[str], object]] = []
        listener.on_reconnect(self._wake_all)

    def on_cancel(self, hook: Callable[[str], object]) -> None:
        """Call `hook(run_id)` when any process cancels a run (the worker stops it)."""
        self._cancel_hooks.append(hook)

    def listen(self) -> None:
        """Subscribe this process to the signals (idempotent; again after a fork)."""
        with self._cond:
            if self._pid == _pid():
                return
        self._listener.subscribe(self._channel, self._receive)
        with self._cond:
            self._pid = _pid()

    # -- GrantSignals ------------------------------------------------------------------

    def notify(self, grant_id: str, outcome: GrantOutcome) -> None:
        """The grant ended: wake everyone waiting for it, in every process."""
        payload = json.dumps({"grant_id": grant_id, "state": outcome.state,
                              "account_id": outcome.account_id})
        self._client.set(self._grant_key(grant_id), payload, ex=_KEEP_S)
        self._client.publish(self._channel, payload)

    def wait(self, grant_id: str, run_id: str | None, timeout: float) -> GrantOutcome | None:
        """Block up to `timeout` for the grant's outcome; None when time ran out first."""
        deadline = time.monotonic() + timeout
        try:
            self.listen()
            stored = self._stored(grant_id, run_id)
        except redis.RedisError:
            # Redis is away: wait a moment and let the caller re-read the database.
            with self._cond:
                self._cond.wait(min(timeout, _OUTAGE_RETRY_S))
            return None
        if stored is not None:
            return stored
        with self._cond:
            generation = self._generation
            while True:
                if grant_id in self._outcomes:
                    return self._outcomes[grant_id]
                if run_id is not None and run_id in self._cancelled:
                    return _CANCELLED
                remaining = deadline - time.monotonic()
                if remaining <= 0 or generation != self._generation:
                    return None  # timed out, or Redis came back: the caller re-reads
                self._cond.wait(remaining)

    def cancel_run(self, run_id: str) -> None:
        """Wake the run (if it waits, wherever) with `cancelled`."""
        self._client.set(self._cancel_key(run_id), "1", ex=_KEEP_S)
        self._client.publish(self._channel, json.dumps({"cancel_run": run_id}))

    def forget_run(self, run_id: str, *, parked: bool = False) -> None:
        """Drop what is kept about a run that ended (or `parked`).

        The stored cancel marker is deleted only for a parked run: resumed, it waits for
        prompts again, and a cancel meant for its earlier life must not end it (the
        lifecycle's resume clears `cancel_requested` too). A run that ended never waits
        again, so its marker is left to expire: one Redis round trip less per run.
        """
        with self._cond:
            self._cancelled.pop(run_id, None)
        if parked:
            self._client.delete(self._cancel_key(run_id))

    # -- inside ------------------------------------------------------------------------

    def _grant_key(self, grant_id: str) -> str:
        return f"{self._prefix}:grant-outcome:{grant_id}"

    def _cancel_key(self, run_id: str) -> str:
        return f"{self._prefix}:run-cancelled:{run_id}"

    def _stored(self, grant_id: str, run_id: str | None) -> GrantOutcome | None:
        if run_id is not None and self._client.exists(self._cancel_key(run_id)):
            return _CANCELLED
        raw = self._client.get(self._grant_key(grant_id))
        return None if raw is None else _outcome(json.loads(raw))

    def _receive(self, raw: str) -> None:
        message = json.loads(raw)
        run_id = message.get("cancel_run")
        with self._cond:
            if run_id is not None:
                self._cancelled[run_id] = None
                while len(self._cancelled) > _RECENT:
                    self._cancelled.popitem(last=False)
            else:
                self._outcomes[message["grant_id"]] = _outcome(message)
                while len(self._outcomes) > _RECENT:
                    self._outcomes.popitem(last=False)
            self._cond.notify_all()
        if run_id is not None:
            for hook in self._cancel_hooks:
                hook(run_id)

    def _wake_all(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()


def _outcome(message: dict[str, object]) -> GrantOutcome:
    account = message.get("account_id")
    return GrantOutcome(str(message["state"]), account if isinstance(account, int) else None)


def _pid() -> int:
    return os.getpid()
