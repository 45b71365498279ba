"""Collab write-behind: what rooms admitted, appended to the log by author, batched.

A room relays a peer's update the moment it admits it (rooms.py) and hands it here. Each
author (a `Principal`: user and device) with something queued has one writer task: it
waits `coalesce` seconds (`SYNCD_COLLAB_COALESCE`) for more keystrokes to join, then
takes what that author has queued in every room and appends it in one transaction
(`sync.write`): a `text` op per note, each note's deltas merged by bounded chunks
(`merge.merge_all`: one `merge_updates` over a 50,000-keystroke backlog is quadratic), at
most `MAX_NOTES` notes a transaction. What arrives meanwhile joins the next one.

Why by author and not by room: a transaction's cost is mostly its own (its statements'
round trips, the commit's fsync, the fan-out of its events), hardly its ops. One person
typing in twenty notes (or twenty tabs of one account) made twenty transactions a turn,
one per room; here they make one. And why wait: at a few keystrokes a second per peer,
a transaction per keystroke was most of the node's and PostgreSQL's work on a steady
collab load, while the peers already had every keystroke; what waits here is durability
alone, a fraction of a second (and `Rooms.stop` writes everything at once).

The author's writes go one at a time per user across the node (`Turns`): every append to
a user's log locks the user's row until it commits (log.py), so two of the user's devices
writing at once would queue in PostgreSQL anyway, each holding a pooled connection.

The rooms vouch for what they admitted (`sync.write(..., vouched=notes)`): once relayed an
update is in every peer's document and comes back on every reconnect, so the log records
it as the room admitted it, judged by the access its author had then; a demotion or
removal since, or a push that took the document to its size limit, does not refuse it. A
note deleted with its owner's account closes its room's peers with 4404. A write that
fails (the database) is logged and each of its rooms is dropped, its peers closed with
1011: they reconnect, the fresh room loads the note from PostgreSQL, and the peers' sync
step 2 sends back whatever was not persisted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Protocol
from uuid import UUID

from syncd import sync
from syncd.db import Database
from syncd.fanout import Hub
from syncd.merge import merge_all
from syncd.messages import Op
from syncd.offload import LARGE_BYTES
from syncd.types import Principal

log = logging.getLogger("syncd.collab")

COALESCE = 0.5  # seconds an author's first queued change waits for more to join it
# What one transaction writes: its planning runs on the event loop up to offload.py's
# LARGE_BYTES of documents, in a thread past them, where it holds the loop back too (it
# takes the GIL); a longer note than that is written alone.
MAX_NOTES = 8
MAX_BYTES = LARGE_BYTES


class Room(Protocol):
    """What the write-behind knows of a room (rooms.Room)."""

    note_id: UUID
    failed: bool  # dropped: what it queued is not written
    unwritten: int  # changes queued here or being written
    size: int  # its document's bytes, at most

    def fail(self, code: int = ..., reason: str = ...) -> None: ...


class Turns:
    """One write-behind transaction per user at a time, across the node's rooms.

    Every append to a user's log locks the user's row until it commits (log.py), so
    several writers of one user queue in PostgreSQL anyway, each holding a pooled
    connection meanwhile: twenty such writers took every connection, and requests
    waiting for one timed out. Queued here instead, they hold none."""

    def __init__(self) -> None:
        self._locks: dict[UUID, tuple[asyncio.Lock, int]] = {}  # the lock, its holder and waiters

    @contextlib.asynccontextmanager
    async def turn(self, user: UUID) -> AsyncIterator[None]:
        lock, users = self._locks.get(user, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[user] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[user]
            if users == 1:
                del self._locks[user]
            else:
                self._locks[user] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class WriteBehind:
    def __init__(self, db: Database, hub: Hub, coalesce: float = COALESCE,
                 max_notes: int = MAX_NOTES) -> None:
        self.db = db
        self.hub = hub
        self.coalesce = coalesce
        self.max_notes = max_notes
        self.turns = Turns()
        # Per author, each room's changes and when its window ends, oldest window first.
        self._queued: dict[Principal, dict[Room, tuple[float, list[bytes]]]] = {}
        self._writers: dict[Principal, asyncio.Task[None]] = {}
        self._now = asyncio.Event()  # set: write what is queued without waiting (stopping)
        self.transactions = 0  # committed (or failed) writes, for /metrics and the tests

    def add(self, who: Principal, room: Room, delta: bytes) -> None:
        """Queue a change `who` made in `room` (admitted and relayed already)."""
        rooms = self._queued.setdefault(who, {})
        queued = rooms.get(room)
        if queued is None:  # the room's window opens
            rooms[room] = queued = (time.monotonic() + self.coalesce, [])
        queued[1].append(delta)
        room.unwritten += 1
        if who not in self._writers:
            self._writers[who] = asyncio.get_running_loop().create_task(self._write(who))

    async def drain(self) -> None:
        """Write everything queued now, and wait until it is in the log (or failed)."""
        self._now.set()
        try:
            while self._writers:
                await asyncio.gather(*list(self._writers.values()), return_exceptions=True)
        finally:
            self._now.clear()

    def __len__(self) -> int:
        """Authors with a write queued or under way."""
        return len(self._writers)

    async def _write(self, who: Principal) -> None:
        try:
            while rooms := self._queued.get(who):
                due, _ = next(iter(rooms.values()))  # the oldest window ends first
                wait = due - time.monotonic()
                if wait > 0 and not self._now.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._now.wait(), wait)
                async with self.turns.turn(who.user_id):
                    batch = self._take(who)  # what came while the turn was taken joins
                    if batch:
                        await self._persist(who, batch)
        finally:
            del self._writers[who]

    def _take(self, who: Principal) -> list[tuple[Room, list[bytes]]]:
        """The author's rooms whose window has ended (every one, when stopping), oldest
        first: at most `max_notes`, and no more once their documents reach MAX_BYTES."""
        rooms = self._queued.get(who, {})
        now = time.monotonic()
        batch: list[tuple[Room, list[bytes]]] = []
        size = 0
        while rooms and len(batch) < self.max_notes and size < MAX_BYTES:
            room, (due, deltas) = next(iter(rooms.items()))
            if due > now and not self._now.is_set():
                break
            del rooms[room]
            if room.failed:  # its peers reconnect and send it again
                room.unwritten -= len(deltas)
            else:
                batch.append((room, deltas))
                size += room.size
        if not rooms:
            self._queued.pop(who, None)
        return batch

    async def _persist(self, who: Principal, batch: list[tuple[Room, list[bytes]]]) -> None:
        ops = [Op(client_seq=0, hlc="", entity="note", id=room.note_id, kind="text",
                  field="body", update=merge_all(deltas)) for room, deltas in batch]
        try:
            results = await sync.write(self.db, self.hub, who, ops,
                                       vouched=frozenset(op.id for op in ops))
        except Exception:
            log.exception("could not persist collab updates to %d notes; reloading their rooms",
                          len(batch))
            for room, _ in batch:
                room.fail()
            return
        finally:
            self.transactions += 1
            for room, deltas in batch:
                room.unwritten -= len(deltas)
        for (room, _), result in zip(batch, results, strict=True):
            if result.code == "not_found":  # deleted with its owner's account
                room.fail(4404, "the note is gone")
            elif result.status == "rejected":  # the room admitted what the log refuses: a bug
                log.error("note %s: the log refused a collab update the room admitted: %s: %s",
                          room.note_id, result.code, result.message)
