"""Open websockets per user counted in Redis, across every web process.

One sorted set per user: a member per open page, scored with the time its slot lapses.
A page renews its slot while open (each session re-check) and gives it back when it
closes; a web process that dies without giving its slots back loses them within
`lease_s`. Redis's own clock times the leases, so web machines' clocks do not matter.

While Redis is unreachable the cap is not enforced (pages keep working; the count is an
abuse bound, not a record) and a renewal puts a slot lost with a Redis restart back.
"""

from __future__ import annotations

import logging
import secrets

import redis

log = logging.getLogger(__name__)

# KEYS[1] the user's set; ARGV: cap, lease seconds, member. 1 if taken, 0 if full.
_ACQUIRE = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""
_RENEW = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
"""


class RedisConnectionSlots:
    """Open websockets per user against a cap, shared by every web process."""

    def __init__(self, client: redis.Redis, *, prefix: str, lease_s: int) -> None:
        self._client = client
        self._prefix = prefix
        self._lease_s = lease_s
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)

    def acquire(self, user_id: int, cap: int) -> str | None:
        """A slot for user_id (its token), or None when they already hold `cap`."""
        token = secrets.token_hex(8)
        try:
            taken = self._acquire(keys=[self._key(user_id)], args=[cap, self._lease_s, token])
        except redis.RedisError:
            log.warning("Redis is unreachable: websocket %s opens uncounted", token)
            return token
        return token if taken else None

    def renew(self, user_id: int, token: str) -> None:
        """The page is still open: its slot lasts another lease."""
        try:
            self._renew(keys=[self._key(user_id)], args=[self._lease_s, token])
        except redis.RedisError:
            log.warning("Redis is unreachable: websocket %s not renewed", token)

    def release(self, user_id: int, token: str) -> None:
        """Give back a slot taken by acquire."""
        try:
            self._client.zrem(self._key(user_id), token)
        except redis.RedisError:
            log.warning("Redis is unreachable: websocket %s lapses on its own", token)

    def _key(self, user_id: int) -> str:
        return f"{self._prefix}:ws:{user_id}"
