"""The unit of work every writer commits through (syncd/unit.py): what a retried attempt
appended is never published, and a caller's cancellation neither loses nor silences a
write that has begun."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from syncd import hlc as hlcs
from syncd import sync
from syncd.auth import Auth
from syncd.db import Database
from syncd.fanout import Hub, Subscriber
from syncd.messages import Event, Op
from syncd.types import Principal
from syncd.unit import Unit, commit


async def _user(db: Database) -> Principal:
    auth = Auth(db, "in-process-test-secret-0123456789abcdef", 900, 3600)
    email = f"u{secrets.token_hex(6)}@example.com"
    await auth.register(email, "correct horse battery", "")
    login = await auth.login(email, "correct horse battery", "dev", "test")
    return Principal(login["user"]["id"], login["device_id"])


def _title(who: Principal, note: uuid.UUID, title: str) -> tuple[Op, str]:
    return Op(0, "", "note", note, "set", {"title": title}), hlcs.clock.tick(who.device_id)


async def _received(sub: Subscriber) -> list[Event]:
    """Everything queued for the subscriber so far."""
    out: list[Event] = []
    while not sub.empty():
        out += sub.get_nowait()
    return out


def _titles(pg_url: str, user: uuid.UUID) -> list[Any]:
    with psycopg.connect(pg_url) as conn:
        return [r[0]["title"] for r in conn.execute(
            "SELECT fields FROM events WHERE user_id = %s AND kind = 'set' ORDER BY seq",
            (user,))]


def test_a_retried_attempt_publishes_only_what_committed(pg_url: str) -> None:
    async def main() -> None:
        db, hub = Database(pg_url, 1, 2), Hub()
        await db.open()
        try:
            who = await _user(db)
            sub = Subscriber(who.user_id)
            hub.subscribe(sub)
            note, attempts = uuid.uuid4(), []

            async def write(unit: Unit) -> None:
                attempts.append(unit)
                await sync.apply_ops(unit, who, [_title(who, note, f"try {len(attempts)}")])
                if len(attempts) == 1:  # as PostgreSQL fails a transaction it cannot order
                    raise pg_errors.SerializationFailure("could not serialize access")

            await commit(db, hub, write)
            assert len(attempts) == 2
            events = await _received(sub)
            assert [(e.kind, e.fields) for e in events] == [("set", {"title": "try 2"})]
            assert _titles(pg_url, who.user_id) == ["try 2"]
        finally:
            await db.close()

    asyncio.run(main())


def test_a_cancelled_caller_neither_loses_nor_silences_the_write(pg_url: str) -> None:
    async def main() -> None:
        db, hub = Database(pg_url, 1, 2), Hub()
        await db.open()
        try:
            who = await _user(db)
            sub = Subscriber(who.user_id)
            hub.subscribe(sub)
            appended, go_on = asyncio.Event(), asyncio.Event()

            async def write(unit: Unit) -> None:
                await sync.apply_ops(unit, who, [_title(who, uuid.uuid4(), "kept")])
                appended.set()
                await go_on.wait()  # the caller is cancelled here, inside the transaction

            caller = asyncio.create_task(commit(db, hub, write))
            await asyncio.wait_for(appended.wait(), 15)
            caller.cancel()
            go_on.set()
            try:
                await caller
                raise AssertionError("the caller was not cancelled")
            except asyncio.CancelledError:
                pass
            # The unit runs on to its end: its events reach the hub after commit.
            events = await asyncio.wait_for(sub.get(), 15)
            assert [(e.kind, e.fields) for e in events] == [("set", {"title": "kept"})]
            assert _titles(pg_url, who.user_id) == ["kept"]
        finally:
            await db.close()

    asyncio.run(main())
