"""PostgreSQL access: the async pool, the schema, and transactions that retry.

A serialization failure, a deadlock or a race on a new entity's id is retried by
re-running the whole transaction function, which is why those functions are pure
apart from the connection they are handed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

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
SCHEMA = Path(__file__).resolve().parent.parent / "schema.sql"
RETRYABLE = (
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
    pg_errors.UniqueViolation,  # two devices creating the same entity id at once
)
Conn = psycopg.AsyncConnection[dict[str, Any]]


def migrate_sync(url: str) -> None:
    """Apply schema.sql; every statement in it is idempotent."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(7215)")  # one migrator at a time
        try:
            conn.execute(SCHEMA.read_text().encode())
        finally:
            conn.execute("SELECT pg_advisory_unlock(7215)")


class Database:
    def __init__(self, url: str, min_size: int = 2, max_size: int = 10) -> None:
        self.url = url
        self.pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"row_factory": dict_row, "autocommit": False},
            open=False,
            check=AsyncConnectionPool.check_connection,
            timeout=10,
        )

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def run(self, fn: Callable[[Conn], Awaitable[T]], *, attempts: int = 8,
                  read_only: bool = False, repeatable: bool = False) -> T:
        """Run fn(conn) in one transaction, retrying the retryable failures."""
        for attempt in range(attempts):
            try:
                async with self.pool.connection() as conn:
                    async with conn.transaction():
                        if repeatable or read_only:
                            await conn.execute(
                                "SET TRANSACTION ISOLATION LEVEL "
                                + ("REPEATABLE READ" if repeatable else "READ COMMITTED")
                                + (" READ ONLY" if read_only else "")
                            )
                        return await fn(conn)
            except RETRYABLE as e:
                if attempt == attempts - 1:
                    raise
                log.debug("retrying transaction after %s", type(e).__name__)
                await asyncio.sleep(0.002 * (2**attempt))
            except (psycopg.OperationalError, psycopg.InterfaceError) as e:
                raise Unavailable("the database is unavailable", {"reason": str(e)[:200]}) from e
            except TimeoutError as e:  # pool exhausted or database unreachable
                raise Unavailable("the database is unavailable") from e
        raise AssertionError("unreachable")
