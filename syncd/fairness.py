"""Fairness: one user's expensive requests cannot take the pool or the server from others.

Expensive routes (search, history, a past state, revert, stats, export, snapshot, and pushes
of more than `LARGE_PUSH` bytes) go through a `Gate`:

- a user has at most `SYNCD_HEAVY_PER_USER` of them in flight, and all users together at
  most half the pool (`SYNCD_POOL_MAX`), so cheap requests always find a connection;
- one over either budget waits up to `SYNCD_HEAVY_WAIT` seconds for a slot, then gets
  `429 rate_limited` with `Retry-After: 1` and `details.limit = "heavy"`;
- their statements run under PostgreSQL's `statement_timeout` (`SYNCD_STATEMENT_TIMEOUT`,
  db.py), past which they end with `503 statement_timeout`.

Each decision is counted (`syncd_heavy_requests{decision}`: admitted at once, admitted after
waiting, refused). The first budget is per user: without it, one user's sixty parallel
searches held every slot of a first-come-first-served pool and another user's note list
took seconds.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.types import ASGIApp, Receive, Scope, Send

from syncd.api.common import error_response
from syncd.db import STATEMENT_TIMEOUT
from syncd.errors import TooManyRequests

LARGE_PUSH = 64 * 1024
_HEAVY = re.compile(r"^/v1/(search|stats|export|sync/snapshot"
                    r"|(notes|projects)/[^/]+/(history|at|revert))$")


def is_heavy(scope: Scope) -> bool:
    path: str = scope["path"]
    if _HEAVY.match(path):
        return True
    if path == "/v1/sync/push":
        length = dict(scope["headers"]).get(b"content-length")
        return length is None or not length.isdigit() or int(length) > LARGE_PUSH
    return False


class _User:
    def __init__(self, per_user: int) -> None:
        self.slots = asyncio.Semaphore(per_user)
        self.holders = 0  # requests holding or waiting for a slot


class Gate:
    def __init__(self, per_user: int, total: int, wait: float) -> None:
        self.per_user = per_user
        self.wait = wait
        self.total = asyncio.Semaphore(max(1, total))
        self.users: dict[str, _User] = {}
        self.decisions: Counter[str] = Counter()  # admitted, waited, refused
        self.in_flight = 0

    @asynccontextmanager
    async def slot(self, user: str) -> AsyncIterator[None]:
        entry = self.users.get(user) or self.users.setdefault(user, _User(self.per_user))
        entry.holders += 1
        try:
            waited = entry.slots.locked() or self.total.locked()
            try:
                async with asyncio.timeout(self.wait):
                    await entry.slots.acquire()
                    try:
                        await self.total.acquire()
                    except BaseException:
                        entry.slots.release()
                        raise
            except TimeoutError:
                self.decisions["refused"] += 1
                refused = TooManyRequests("too many expensive requests at once; retry in 1s", 1)
                refused.details["limit"] = "heavy"
                raise refused from None
            self.decisions["waited" if waited else "admitted"] += 1
            self.in_flight += 1
            try:
                yield
            finally:
                self.in_flight -= 1
                self.total.release()
                entry.slots.release()
        finally:
            entry.holders -= 1
            if not entry.holders:
                del self.users[user]


class Fairness:
    """ASGI middleware: expensive requests of a signed-in user pass through the gate, with
    the statement timeout set for their transactions. It sits inside RequestContext, which
    names the user (`scope["state"]["user_id"]`)."""

    def __init__(self, app: ASGIApp, gate: Gate, statement_timeout: float) -> None:
        self.app = app
        self.gate = gate
        self.statement_timeout = statement_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("state", {}).get("user_id") if scope["type"] == "http" else None
        if user is None or self.gate.per_user <= 0 or not is_heavy(scope):
            await self.app(scope, receive, send)
            return
        try:
            async with self.gate.slot(user):
                token = STATEMENT_TIMEOUT.set(self.statement_timeout or None)
                try:
                    await self.app(scope, receive, send)
                finally:
                    STATEMENT_TIMEOUT.reset(token)
        except TooManyRequests as e:
            if e.details.get("limit") != "heavy":
                raise
            await error_response(e)(scope, receive, send)
