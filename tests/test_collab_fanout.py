"""A collab room's fan-out and write-behind under many writers: updates a turn of the event
loop applies go out merged once for every peer, and one user's rooms write behind one
transaction at a time (rooms.py), against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

from pycrdt import Doc, Text

from syncd import yproto
from syncd.db import Database
from syncd.fanout import Hub
from syncd.rooms import Rooms
from syncd.types import Principal
from tests.fix_server import ServerProcess
from tests.helpers import Api, Device
from tests.test_collab import make_note, stored_text


class Recorder:
    """A room's peer that keeps what the room sends it."""

    def __init__(self) -> None:
        self.updates: list[bytes] = []
        self.closed: tuple[int, str] | None = None

    def send(self, frame: bytes) -> None:
        pass

    def send_update(self, update: bytes) -> None:
        self.updates.append(update)

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


def test_updates_of_one_turn_go_out_merged_once(server: ServerProcess, api: Api,
                                                pg_url: str) -> None:
    dev: Device = api.user("fan")
    nid = make_note(dev)
    who = Principal(UUID(dev.user_id), UUID(dev.device_id))
    a, b, c, reader = Recorder(), Recorder(), Recorder(), Recorder()
    mine = edits(1, ["a1", "a2", "a3"])
    first, second, later = mine[:2], edits(2, ["b1"]), mine[2]
    after_first: list[int] = []

    async def scenario() -> None:
        db = Database(pg_url)
        await db.open()
        try:
            async with Rooms(db, Hub()) as rooms:
                room = rooms.get(UUID(nid), None)
                for peer in (a, b, c, reader):
                    room.join(peer)
                # One turn: a's two updates and b's one.
                room.apply_from_peer(who, first[0], a)
                room.apply_from_peer(who, first[1], a)
                room.apply_from_peer(who, second[0], b)
                assert not reader.updates  # sent at the end of the turn
                await asyncio.sleep(0)
                after_first.extend(len(p.updates) for p in (a, b, c, reader))
                # The next turn: a alone.
                room.apply_from_peer(who, later, a)
                await asyncio.sleep(0)
                await room.drain()
        finally:
            await db.close()

    asyncio.run(scenario())
    # Every peer got the first turn as one update; a's own edits came back inside it.
    assert after_first == [1, 1, 1, 1]
    for peer in (a, b, c, reader):
        assert text_of(peer.updates[:1]) == text_of([*first, *second])
    # The second turn was a's alone: not sent back to a.
    assert [len(p.updates) for p in (a, b, c, reader)] == [1, 2, 2, 2]
    expected = text_of([*first, *second, later])
    assert text_of(reader.updates) == expected
    assert stored_text(dev, nid) == expected


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


def test_a_refused_update_in_a_busy_turn_refuses_only_itself(server: ServerProcess,
                                                             api: Api, pg_url: str) -> None:
    """A refused update raises before it reaches the turn's batch: the others of the turn
    still go out, merged."""
    from syncd.rooms import Refused

    dev = api.user("refused")
    nid = make_note(dev)
    who = Principal(UUID(dev.user_id), UUID(dev.device_id))
    a, b, reader = Recorder(), Recorder(), Recorder()
    refused: list[int] = []

    async def scenario() -> None:
        db = Database(pg_url)
        await db.open()
        try:
            async with Rooms(db, Hub()) as rooms:
                room = rooms.get(UUID(nid), None)
                for peer in (a, b, reader):
                    room.join(peer)
                room.apply_from_peer(who, edits(1, ["ok"])[0], a)
                try:
                    room.apply_from_peer(who, b"\x01\xff\xff\xff\xff\x0f\x00\x07", b)
                except Refused as e:
                    refused.append(e.close_code)
                room.apply_from_peer(who, edits(2, ["!"])[0], a)
                await asyncio.sleep(0)
                await room.drain()
        finally:
            await db.close()

    asyncio.run(scenario())
    assert refused == [4409]
    assert len(reader.updates) == 1
    assert text_of(reader.updates) in ("ok!", "!ok")
    assert a.updates == []  # both were a's
    assert stored_text(dev, nid) == text_of(reader.updates)
    assert yproto.encode_update(reader.updates[0])  # a valid frame's payload
