"""A collab room's write-behind under many rooms: one user's rooms write behind one
transaction at a time (rooms.py), against a real PostgreSQL."""

from __future__ import annotations

import asyncio
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


def test_a_users_rooms_write_behind_one_at_a_time(server: ServerProcess, api: Api,
                                                  pg_url: str) -> None:
    """Each write locks the user's log head until it commits: rooms writing as one user
    take turns on the node instead of each holding a pooled connection while they wait."""
    dev = api.user("turns")
    nids = [make_note(dev) for _ in range(3)]
    who = Principal(UUID(dev.user_id), UUID(dev.device_id))
    seen: dict[str, str] = {}

    async def scenario() -> None:
        db = Database(pg_url)
        await db.open()
        try:
            async with Rooms(db, Hub(), coalesce=0.0) as rooms:
                peers = [Recorder() for _ in nids]
                rooms_ = [rooms.get(UUID(n), None) for n in nids]
                for room, peer in zip(rooms_, peers, strict=True):
                    room.join(peer)
                async with rooms.turns.turn(who.user_id):  # another write of the user
                    for k, (room, peer) in enumerate(zip(rooms_, peers, strict=True)):
                        room.apply_from_peer(who, edits(10 + k, [f"note {k}"])[0], peer)
                    await asyncio.sleep(0.3)
                    # Nothing written while the user's turn is taken, whatever the timing.
                    stored = await asyncio.to_thread(lambda: [stored_text(dev, n) for n in nids])
                    seen["held"] = ",".join(stored)
                    assert all(r.writer is not None for r in rooms_)
                for room in rooms_:
                    await room.drain()
                assert len(rooms.turns) == 0  # no lock is kept for a user with no writes
                assert all(p.closed is None for p in peers)
        finally:
            await db.close()

    asyncio.run(scenario())
    assert seen["held"] == ",,"
    assert [stored_text(dev, n) for n in nids] == ["note 0", "note 1", "note 2"]
