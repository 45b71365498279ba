"""One unit of work: every write to the log commits through `commit`.

A writer (push, server-made writes, REST edits, conflicts, sharing, erase, import) hands
`commit` a function of a `Unit`: the transaction's connection, and `Unit.append`, the one
way to append to the log. `commit` runs the function in one transaction, retried on
serialization failures and deadlocks (`Database.run`); each attempt gets a fresh Unit, so
what a failed attempt appended is never published. After commit, the events go to the
fan-out hub.

Once begun, a unit runs to its end even when its caller is cancelled (a client hanging
up mid-push, a socket closing): a cancel landing while COMMIT is on the wire would
otherwise leave a committed write unpublished, and the other devices' live sockets would
not hear of it until they next resumed from the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

from syncd import log
from syncd.db import Conn, Database
from syncd.fanout import Hub
from syncd.messages import Event
from syncd.plan import Planned

T = TypeVar("T")


class Unit:
    """One attempt at a transaction: its connection and the events it appended."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.events: list[dict[UUID, list[Event]]] = []

    async def append(self, planned: list[Planned]) -> dict[UUID, list[Event]]:
        """Append planned events to their audience's logs (log.append); they are published
        when the transaction commits. Returns them per user."""
        events = await log.append(self.conn, planned)
        self.events.append(events)
        return events


# Units whose callers were cancelled: referenced here until they end, since the event
# loop keeps only weak references to tasks.
_running: set[asyncio.Task[Any]] = set()


async def commit(db: Database, hub: Hub | None, fn: Callable[[Unit], Awaitable[T]]) -> T:
    """Run fn in one transaction with retries, then publish what it appended to `hub`
    (None where no socket can listen: the `syncd import` command)."""
    task = asyncio.ensure_future(_run(db, hub, fn))
    _running.add(task)
    task.add_done_callback(_ended)
    return await asyncio.shield(task)


def _ended(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a cancelled caller no longer awaits it


async def _run(db: Database, hub: Hub | None, fn: Callable[[Unit], Awaitable[T]]) -> T:
    last: list[Unit] = []

    async def attempt(conn: Conn) -> T:
        unit = Unit(conn)
        last[:] = [unit]
        return await fn(unit)

    result = await db.run(attempt)
    if hub is not None:
        for events in last[0].events:
            await hub.publish(events)
    return result
