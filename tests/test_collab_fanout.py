"""The collab write-behind under many rooms (writebehind.py), against a real PostgreSQL:
an author's changes in several rooms go into one transaction, a user's transactions one
at a time, and each room's changes wait out their window."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from pycrdt import Doc, Text

from syncd.db import Database
from syncd.fanout import Hub
from syncd.frames import Outgoing
from syncd.rooms import Rooms
from syncd.types import Principal
from tests.fix_server import ServerProcess
from tests.helpers import Api
from tests.test_collab import make_note, stored_text


class Recorder:
    """A room's peer that keeps what the room sends it."""

    def __init__(self) -> None:
        self.updates: list[bytes] = []
        self.closed: tuple[int, str] | None = None

    @property
    def open(self) -> bool:
        return self.closed is None

    def deliver(self, out: Outgoing) -> None:
        if out.update:
            self.updates.append(out.data)

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def edits(client_id: int, pieces: list[str]) -> list[bytes]:
    doc: Doc[Any] = Doc(client_id=client_id)
    text = doc.get("body", type=Text)
    out = []
    for piece in pieces:
        before = doc.get_state()
        text.insert(len(text), piece)
        out.append(doc.get_update(before))
    return out


def text_of(updates: list[bytes]) -> str:
    doc: Doc[Any] = Doc()
    for update in updates:
        doc.apply_update(update)
    return str(doc.get("body", type=Text))


@contextlib.asynccontextmanager
async def rooms_on(pg_url: str, coalesce: float) -> AsyncIterator[Rooms]:
    """A node's rooms on a pool of their own, stopped (everything written) on the way out."""
    db = Database(pg_url)
    await db.open()
    try:
        async with Rooms(db, Hub(), coalesce=coalesce) as rooms:
            yield rooms
    finally:
        await db.close()


def test_a_users_rooms_write_behind_one_at_a_time(server: ServerProcess, api: Api,
                                                  pg_url: str) -> None:
    """Each write locks the user's log head until it commits: the user's writes take turns
    on the node instead of each holding a pooled connection while they wait; and what one
    author typed in three rooms meanwhile goes into one transaction."""
    dev = api.user("turns")
    nids = [make_note(dev) for _ in range(3)]
    who = Principal(UUID(dev.user_id), UUID(dev.device_id))
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with rooms_on(pg_url, coalesce=0.0) as rooms:
            peers = [Recorder() for _ in nids]
            rooms_ = [rooms.get(UUID(n), None) for n in nids]
            for room, peer in zip(rooms_, peers, strict=True):
                room.join(peer)
            async with rooms.writes.turns.turn(who.user_id):  # another write of the user
                for k, (room, peer) in enumerate(zip(rooms_, peers, strict=True)):
                    room.apply_from_peer(who, edits(10 + k, [f"note {k}"])[0], peer)
                await asyncio.sleep(0.3)
                # Nothing written while the user's turn is taken, whatever the timing.
                stored = await asyncio.to_thread(lambda: [stored_text(dev, n) for n in nids])
                seen["held"] = ",".join(stored)
                assert [r.unwritten for r in rooms_] == [1, 1, 1]
                assert len(rooms.writes) == 1  # one writer: the author's
            await rooms.writes.drain()
            seen["transactions"] = rooms.writes.transactions
            assert all(r.unwritten == 0 for r in rooms_)
            assert len(rooms.writes.turns) == 0  # no lock is kept for a user with no writes
            assert len(rooms.writes) == 0
            assert all(p.closed is None for p in peers)

    asyncio.run(scenario())
    assert seen["held"] == ",,"
    assert seen["transactions"] == 1
    assert [stored_text(dev, n) for n in nids] == ["note 0", "note 1", "note 2"]


def test_a_rooms_changes_wait_out_their_window(server: ServerProcess, api: Api,
                                              pg_url: str) -> None:
    """A room's first change opens its window: nothing is written before it ends, and
    whatever the author typed in it meanwhile goes into one write; a window opened later
    in another room ends later."""
    dev = api.user("window")
    nids = [make_note(dev) for _ in range(2)]
    who = Principal(UUID(dev.user_id), UUID(dev.device_id))
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with rooms_on(pg_url, coalesce=2.0) as rooms:
            peer = Recorder()
            first, second = (rooms.get(UUID(n), None) for n in nids)
            first.join(peer)
            second.join(peer)
            for update in edits(20, ["a", "b", "c"]):
                first.apply_from_peer(who, update, peer)
            await asyncio.sleep(0.5)
            seen["early"] = await asyncio.to_thread(stored_text, dev, nids[0])
            await asyncio.sleep(0.5)
            second.apply_from_peer(who, edits(21, ["later"])[0], peer)
            await asyncio.sleep(1.5)  # half a second past the first window, not the second
            seen["first"] = await asyncio.to_thread(stored_text, dev, nids[0])
            seen["second"] = await asyncio.to_thread(stored_text, dev, nids[1])
            await rooms.writes.drain()
            seen["transactions"] = rooms.writes.transactions

    asyncio.run(scenario())
    assert seen["early"] == ""
    assert seen["first"] == "abc"
    assert seen["second"] == ""
    assert seen["transactions"] == 2
    assert stored_text(dev, nids[1]) == "later"
