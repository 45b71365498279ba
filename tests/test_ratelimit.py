"""The rate limiter's in-process counters (no Redis): counted per window, bounded in bytes."""

from __future__ import annotations

import asyncio

import pytest

from syncd.config import Settings
from syncd.errors import TooManyRequests
from syncd.ratelimit import ENTRY_BYTES, LOCAL_BYTES, Limiter


def test_local_counters_refuse_past_the_limit_and_stay_within_their_bytes() -> None:
    async def main() -> None:
        settings = Settings()
        settings.redis_url = None
        limiter = Limiter(settings)
        for _ in range(3):
            await limiter.hit("auth-email", "a@example.com", 3)
        with pytest.raises(TooManyRequests):
            await limiter.hit("auth-email", "a@example.com", 3)
        long = "x" * 300
        for i in range(60_000):  # ~26 MB of distinct long keys, were they all kept
            await limiter.hit("auth-email", f"{i}{long}@example.com", 10)
        kept = limiter._local
        assert sum(len(k) + ENTRY_BYTES for k in kept) <= LOCAL_BYTES
        assert len(kept) > 1000  # the newest are still counted

    asyncio.run(main())
