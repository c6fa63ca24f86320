"""Throttles: sign-ins against guessing (per account and per client address; a signed-in
user's current password, to change it, counts on the same per-account count), the
webhook sends an admin asks for (tests and redeliveries, per endpoint and per facility),
and the runs a webhook trigger's URL starts (per trigger), so that neither a facility
admin nor a stolen API token or trigger URL can use the server as a cannon; and the
messages each open websocket sends (per socket, in memory). Beside them,
the refusals of a trigger's URL written a second (a flood of them is counted in the
process, app.services.trigger_refusals).

Counted with `limits` (Flask-Limiter's engine) in memory, or in Redis when
SCRIPTBOX_REDIS_URL is set so that every web process shares the counts.
"""

from __future__ import annotations

import math
import time

from flask import Flask, current_app
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.errors import TooManyAttempts
from app.services.trigger_refusals import RefusalTally


class _MemoryStorage(MemoryStorage):
    """limits' in-memory storage, whose `clear` takes the key's lock. Its own pops the key
    while its expiry thread may be between reading the key's events and writing them back:
    that thread then dies of a KeyError (limits 5.8), as a sign-in that succeeded (its count
    cleared) or a closed websocket can make it do. The expiry holds the same lock."""

    def clear(self, key: str) -> None:
        with self.locks[key]:
            super().clear(key)


def _limiter(storage_uri: str, prefix: str) -> MovingWindowRateLimiter:
    if storage_uri.startswith("memory://"):
        return MovingWindowRateLimiter(_MemoryStorage())
    storage = storage_from_string(storage_uri, key_prefix=f"{prefix}:limits")
    return MovingWindowRateLimiter(storage)


def _seconds_left(limiter: MovingWindowRateLimiter, item: RateLimitItem, *keys: str) -> int:
    reset = limiter.get_window_stats(item, *keys).reset_time
    return max(1, math.ceil(reset - time.time()))


class LoginThrottle:
    """Counts sign-in attempts per account and per address in a moving window."""

    def __init__(
        self, storage_uri: str, *, per_account: str, per_address: str, prefix: str = "scriptbox"
    ) -> None:
        self._limiter = _limiter(storage_uri, prefix)
        self._account: RateLimitItem = parse(per_account)
        self._address: RateLimitItem = parse(per_address)

    def attempt(self, *, email: str, address: str) -> None:
        """Count one attempt before the password is checked; TooManyAttempts when spent.

        Counting first (not after a failure) means parallel guesses cannot slip past
        the check while earlier ones are still being verified.
        """
        self._count(
            "Too many sign-in attempts",
            (self._account, "login-account", email),
            (self._address, "login-address", address),
        )

    def password_check(self, *, email: str) -> None:
        """Count one check of a signed-in user's current password (to change it) before it
        is made, on the same per-account count as sign-ins: a stolen session cannot guess
        there either, nor add to the guesses the sign-in form allows. The address is not
        counted: whoever asks can only guess the one account they are signed in as."""
        self._count("Too many password attempts", (self._account, "login-account", email))

    def succeeded(self, *, email: str) -> None:
        """The account's owner gave its password: their own count starts over (the
        address's not)."""
        self._limiter.clear(self._account, "login-account", email)

    def _count(self, what: str, *keys: tuple[RateLimitItem, str, str]) -> None:
        waits = [
            self._retry_after(item, kind, value)
            for item, kind, value in keys
            if not self._limiter.hit(item, kind, value)
        ]
        if waits:
            seconds = max(waits)
            raise TooManyAttempts(f"{what}. Try again in {seconds} s.", retry_after=seconds)

    def _retry_after(self, item: RateLimitItem, kind: str, value: str) -> int:
        return _seconds_left(self._limiter, item, kind, value)


class SendThrottle:
    """Counts the webhook sends admins ask for (a test, a redelivery) per endpoint and per
    facility in a moving window: each makes the server send a request outward, and a
    facility has up to MAX_ENDPOINTS endpoints, so the facility's own limit bounds them all.
    The deliveries the server makes for events are not counted (events pace them)."""

    def __init__(
        self, storage_uri: str, *, per_endpoint: str, per_facility: str, prefix: str = "scriptbox"
    ) -> None:
        self._limiter = _limiter(storage_uri, prefix)
        self._endpoint: RateLimitItem = parse(per_endpoint)
        self._facility: RateLimitItem = parse(per_facility)

    def attempt(self, *, facility_id: int, endpoint_id: int) -> None:
        """Count one send; TooManyAttempts (429, with its Retry-After) when either is spent.

        A refused send is not counted (a moving window records only what it lets through),
        so asking again early does not push the wait further out.
        """
        checks = (
            (self._endpoint, "webhook-sends-endpoint", str(endpoint_id), "to this endpoint"),
            (self._facility, "webhook-sends-facility", str(facility_id), "from this facility"),
        )
        for item, kind, value, scope in checks:
            if not self._limiter.hit(item, kind, value):
                seconds = _seconds_left(self._limiter, item, kind, value)
                raise TooManyAttempts(
                    f"Too many test and redelivery sends {scope} (at most {item}). "
                    f"Try again in {seconds} s.",
                    retry_after=seconds,
                )


# How often one webhook trigger's URL may start a run: a third party's retry storm (or a
# leaked URL) queues no more than this; past it a 429 with Retry-After.
HOOK_CALLS_PER_TRIGGER = "60/minute"


class HookThrottle:
    """Counts the runs one webhook trigger's URL starts in a moving window (/hooks/<token>):
    the caller is anonymous, so the trigger is what is counted."""

    def __init__(
        self, storage_uri: str, *, per_trigger: str = HOOK_CALLS_PER_TRIGGER,
        prefix: str = "scriptbox",
    ) -> None:
        self._limiter = _limiter(storage_uri, prefix)
        self._trigger: RateLimitItem = parse(per_trigger)

    def attempt(self, *, trigger_id: int) -> None:
        """Count one call; TooManyAttempts (429, with its Retry-After) when spent."""
        if not self._limiter.hit(self._trigger, "hook-calls", str(trigger_id)):
            seconds = _seconds_left(self._limiter, self._trigger, "hook-calls", str(trigger_id))
            raise TooManyAttempts(
                f"Too many calls of this webhook trigger (at most {self._trigger}). "
                f"Try again in {seconds} s.",
                retry_after=seconds,
            )


class MessageBudget:
    """Counts the messages each open websocket sends in a moving window. In this process's
    memory whatever the other throttles use: a socket lives in one process, and a Redis
    round trip per message would cost what the budget spares."""

    def __init__(self, per_socket: str) -> None:
        self._limiter = MovingWindowRateLimiter(_MemoryStorage())
        self._socket: RateLimitItem = parse(per_socket)

    @property
    def allowed(self) -> str:
        """The budget in words ("120 per 1 minute")."""
        return str(self._socket)

    def spend(self, socket_id: str) -> bool:
        """Count one message of the socket; False once its budget is spent."""
        return self._limiter.hit(self._socket, "ws-messages", socket_id)

    def forget(self, socket_id: str) -> None:
        """The socket closed: its count goes."""
        self._limiter.clear(self._socket, "ws-messages", socket_id)


def hook_throttle(app: Flask | None = None) -> HookThrottle:
    """The app's throttle of webhook trigger calls."""
    throttle: HookThrottle = (app or current_app).extensions["scriptbox.hook_throttle"]
    return throttle


def login_throttle(app: Flask | None = None) -> LoginThrottle:
    """The app's sign-in throttle."""
    throttle: LoginThrottle = (app or current_app).extensions["scriptbox.login_throttle"]
    return throttle


def send_throttle(app: Flask | None = None) -> SendThrottle:
    """The app's throttle of webhook tests and redeliveries."""
    throttle: SendThrottle = (app or current_app).extensions["scriptbox.send_throttle"]
    return throttle


def message_budget(app: Flask | None = None) -> MessageBudget:
    """The app's budget of messages per open websocket."""
    budget: MessageBudget = (app or current_app).extensions["scriptbox.message_budget"]
    return budget


def refusal_tally(app: Flask | None = None) -> RefusalTally:
    """This process's count of a trigger URL's refusals not yet written."""
    tally: RefusalTally = (app or current_app).extensions["scriptbox.refusal_tally"]
    return tally


def init_app(app: Flask) -> None:
    """Create the throttles on Redis when configured, else in this process's memory."""
    storage = app.config["REDIS_URL"] or "memory://"
    app.extensions["scriptbox.login_throttle"] = LoginThrottle(
        storage,
        per_account=app.config["LOGIN_ATTEMPTS_PER_ACCOUNT"],
        per_address=app.config["LOGIN_ATTEMPTS_PER_ADDRESS"],
        prefix=app.config["REDIS_PREFIX"],
    )
    app.extensions["scriptbox.send_throttle"] = SendThrottle(
        storage,
        per_endpoint=app.config["WEBHOOK_SENDS_PER_ENDPOINT"],
        per_facility=app.config["WEBHOOK_SENDS_PER_FACILITY"],
        prefix=app.config["REDIS_PREFIX"],
    )
    app.extensions["scriptbox.hook_throttle"] = HookThrottle(
        storage, prefix=app.config["REDIS_PREFIX"]
    )
    app.extensions["scriptbox.message_budget"] = MessageBudget(
        app.config["WS_MESSAGES_PER_SOCKET"]
    )
    # In memory always: it only spares the database writes, each process its own.
    app.extensions["scriptbox.refusal_tally"] = RefusalTally()
