"""Sign-in throttling against guessing: per account and per client address.

Counted with `limits` (Flask-Limiter's engine) in memory, or in Redis when
SCRIPTBOX_REDIS_URL is set so that every web process shares the counts.
"""

from __future__ import annotations

import math
import time

from flask import Flask, current_app
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.errors import TooManyAttempts


class LoginThrottle:
    """Counts sign-in attempts per account and per address in a moving window."""

    def __init__(
        self, storage_uri: str, *, per_account: str, per_address: str, prefix: str = "scriptbox"
    ) -> None:
        options = {} if storage_uri.startswith("memory://") else {"key_prefix": f"{prefix}:limits"}
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri, **options))
        self._account: RateLimitItem = parse(per_account)
        self._address: RateLimitItem = parse(per_address)

    def attempt(self, *, email: str, address: str) -> None:
        """Count one attempt before the password is checked; TooManyAttempts when spent.

        Counting first (not after a failure) means parallel guesses cannot slip past
        the check while earlier ones are still being verified.
        """
        keys = ((self._account, "login-account", email), (self._address, "login-address", address))
        waits = [
            self._retry_after(item, kind, value)
            for item, kind, value in keys
            if not self._limiter.hit(item, kind, value)
        ]
        if waits:
            seconds = max(waits)
            raise TooManyAttempts(
                f"Too many sign-in attempts. Try again in {seconds} s.", retry_after=seconds
            )

    def succeeded(self, *, email: str) -> None:
        """The account's owner signed in: their own count starts over (the address's not)."""
        self._limiter.clear(self._account, "login-account", email)

    def _retry_after(self, item: RateLimitItem, kind: str, value: str) -> int:
        reset = self._limiter.get_window_stats(item, kind, value).reset_time
        return max(1, math.ceil(reset - time.time()))


def login_throttle(app: Flask | None = None) -> LoginThrottle:
    """The app's sign-in throttle."""
    throttle: LoginThrottle = (app or current_app).extensions["scriptbox.login_throttle"]
    return throttle


def init_app(app: Flask) -> None:
    """Create the throttle on Redis when configured, else in this process's memory."""
    app.extensions["scriptbox.login_throttle"] = LoginThrottle(
        app.config["REDIS_URL"] or "memory://",
        per_account=app.config["LOGIN_ATTEMPTS_PER_ACCOUNT"],
        per_address=app.config["LOGIN_ATTEMPTS_PER_ADDRESS"],
        prefix=app.config["REDIS_PREFIX"],
    )
