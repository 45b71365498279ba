"""Fixed-window rate limits: login/register attempts per IP and per email, and a request
budget per user. Counters live in Redis when REDIS_URL is set (shared by every node), in a
bounded in-process dict otherwise. A Redis outage falls back to the local counters rather
than refusing or failing requests.

Each counted hit inside a request is noted in `QUOTAS` (set per request by
syncd/middleware.py), which answers with the tightest one as `X-RateLimit-Limit`,
`X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds until the window ends), whichever
route counted it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from syncd.config import Settings
from syncd.errors import TooManyRequests

log = logging.getLogger("syncd.ratelimit")
# The in-process counters' budget, in bytes: a key's characters and ~120 bytes of dict entry
# and int (an email is up to 320 characters, so a count of keys did not bound the bytes).
LOCAL_BYTES = 8 * 1024 * 1024
ENTRY_BYTES = 120


@dataclass(frozen=True)
class Quota:
    """One counter after a hit: its limit, the hits left in its window, seconds to its end."""

    limit: int
    remaining: int
    reset: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"x-ratelimit-limit", str(self.limit).encode()),
                (b"x-ratelimit-remaining", str(self.remaining).encode()),
                (b"x-ratelimit-reset", str(self.reset).encode())]


# The quotas the current request has counted against (None outside a request).
QUOTAS: ContextVar[list[Quota] | None] = ContextVar("syncd_quotas", default=None)


def tightest(quotas: list[Quota]) -> Quota | None:
    """The quota a client must respect first: fewest hits left, then the longest wait."""
    return min(quotas, key=lambda q: (q.remaining, -q.reset), default=None)


class Limiter:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.window = max(1, settings.rate_window)
        self._local: dict[str, int] = {}
        self._local_bytes = 0
        self._redis: Any = None

    def redis(self) -> Any:
        """The async Redis client (made on first use, inside the running loop), or None."""
        if self._redis is None and self.settings.redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(self.settings.redis_url, socket_timeout=1,
                                            socket_connect_timeout=1)
        return self._redis

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    async def hit(self, name: str, ident: str, limit: int) -> None:
        """Count one hit on (name, ident); raise 429 with Retry-After past `limit` per window."""
        if limit <= 0:
            return
        now = time.time()
        index = int(now // self.window)
        key = f"syncd:rl:{name}:{ident}:{index}"
        count = await self._incr(key)
        reset = max(1, math.ceil((index + 1) * self.window - now))
        noted = QUOTAS.get()
        if noted is not None:
            noted.append(Quota(limit, max(0, limit - count), reset))
        if count > limit:
            raise TooManyRequests(f"too many requests ({name}); retry in {reset}s", reset)

    async def _incr(self, key: str) -> int:
        client = self.redis()
        if client is not None:
            try:
                async with client.pipeline(transaction=False) as pipe:
                    pipe.incr(key)
                    pipe.expire(key, self.window + 1)
                    count, _ = await pipe.execute()
                return int(count)
            except Exception as e:  # any Redis failure: count locally instead
                log.warning("rate limit counters fall back to memory: %s", type(e).__name__)
        return self._incr_local(key)

    def _incr_local(self, key: str) -> int:
        if key not in self._local:
            if self._local_bytes + len(key) + ENTRY_BYTES > LOCAL_BYTES:
                current = f":{int(time.time() // self.window)}"
                self._keep(lambda items: [kv for kv in items if kv[0].endswith(current)])
                if self._local_bytes > LOCAL_BYTES // 2:  # one window's worth: drop the oldest half
                    self._keep(lambda items: items[len(items) // 2:])
            self._local_bytes += len(key) + ENTRY_BYTES
        self._local[key] = count = self._local.get(key, 0) + 1
        return count

    def _keep(self, choose: Callable[[list[tuple[str, int]]], list[tuple[str, int]]]) -> None:
        self._local = dict(choose(list(self._local.items())))
        self._local_bytes = sum(len(k) + ENTRY_BYTES for k in self._local)

    async def auth_attempt(self, ip: str, email: str) -> None:
        """Login and register: per client IP and per (normalised) email."""
        limit = self.settings.rate_auth
        await self.hit("auth-ip", ip, limit)
        await self.hit("auth-email", email.strip().lower()[:320], limit)
