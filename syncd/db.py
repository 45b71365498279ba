"""PostgreSQL access: the async pool and transactions that retry.

A serialization failure, a deadlock or a race on a new entity's id is retried by
re-running the whole transaction function, which is why those functions are pure
apart from the connection they are handed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

import msgspec
import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool

from syncd.errors import Unavailable

log = logging.getLogger("syncd.db")
# msgspec reads and writes json/jsonb columns: several times faster than the stdlib.
set_json_dumps(msgspec.json.encode)
set_json_loads(msgspec.json.decode)
T = TypeVar("T")
RETRYABLE = (
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
    pg_errors.UniqueViolation,  # two devices creating the same entity id at once
)
Conn = psycopg.AsyncConnection[dict[str, Any]]
# Seconds each statement of this context's transactions may run (fairness.py sets it for
# expensive routes); None: PostgreSQL's own setting.
STATEMENT_TIMEOUT: ContextVar[float | None] = ContextVar("statement_timeout", default=None)


# A connection used within IDLE_CHECK seconds is handed out without a ping; one idle longer
# (it may have outlived a PostgreSQL restart) is checked first. A ping on every checkout
# cost a round trip per transaction.
IDLE_CHECK = 2.0
_last_used: WeakKeyDictionary[Conn, float] = WeakKeyDictionary()


async def _check_if_idle(conn: Conn) -> None:
    if time.monotonic() - _last_used.get(conn, 0.0) > IDLE_CHECK:
        await AsyncConnectionPool.check_connection(conn)


async def _configure(conn: Conn) -> None:
    # psycopg prepares a statement after a few runs, and PostgreSQL may then settle on a
    # generic plan. Chosen on one-op pushes, it made 1000-op pushes ~50% slower (52 → 80 ms):
    # the same statements see arrays of 1 to 1000 ids, so each run is planned for its own.
    await conn.execute("SET plan_cache_mode = force_custom_plan")
    await conn.commit()


class Database:
    def __init__(self, url: str, min_size: int = 2, max_size: int = 10) -> None:
        self.url = url
        self.pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"row_factory": dict_row, "autocommit": False},
            configure=_configure,
            open=False,
            check=_check_if_idle,
            timeout=10,
        )

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def run(self, fn: Callable[[Conn], Awaitable[T]], *, attempts: int = 8,
                  read_only: bool = False, repeatable: bool = False) -> T:
        """Run fn(conn) in one transaction, retrying the retryable failures.

        A read at READ COMMITTED runs without BEGIN and COMMIT: each statement already
        reads its own snapshot at that level, so the explicit transaction only cost two
        round trips (and its READ ONLY guard)."""
        limit = STATEMENT_TIMEOUT.get()
        for attempt in range(attempts):
            try:
                async with self.pool.connection() as conn:
                    try:
                        if read_only and not repeatable and limit is None:
                            await conn.set_autocommit(True)
                            try:
                                return await fn(conn)
                            finally:
                                await conn.set_autocommit(False)
                        # Applied by the BEGIN itself: no SET TRANSACTION round trip.
                        await conn.set_read_only(read_only or None)
                        await conn.set_isolation_level(
                            psycopg.IsolationLevel.REPEATABLE_READ if repeatable else None)
                        async with conn.transaction():
                            if limit is not None:  # for this transaction only
                                await conn.execute(
                                    "SELECT set_config('statement_timeout', %s, true)",
                                    (f"{max(1, int(limit * 1000))}ms",))
                            return await fn(conn)
                    finally:
                        _last_used[conn] = time.monotonic()
            except RETRYABLE as e:
                if attempt == attempts - 1:
                    raise
                log.debug("retrying transaction after %s", type(e).__name__)
                await asyncio.sleep(0.002 * (2**attempt))
            except pg_errors.QueryCanceled as e:
                raise Unavailable(f"the request took more than {limit} s of database time",
                                  {"statement_timeout": limit},
                                  code="statement_timeout") from e
            except (psycopg.OperationalError, psycopg.InterfaceError) as e:
                raise Unavailable("the database is unavailable", {"reason": str(e)[:200]}) from e
            except TimeoutError as e:  # pool exhausted or database unreachable
                raise Unavailable("the database is unavailable") from e
        raise AssertionError("unreachable")
