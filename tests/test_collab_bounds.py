"""What a collab room holds is bounded: idle documents by their total size, awareness by
the bytes of a state, the clients one connection announces and the states of a room."""

from __future__ import annotations

import json
import uuid
from typing import Any

from pycrdt import Doc, Text

from syncd import yproto
from syncd.db import Database
from syncd.fanout import Hub
from syncd.rooms import AWARENESS_STATE_BYTES, AWARENESS_STATES, PEER_AWARENESS, Rooms
from tests.fix_server import ServerProcess
from tests.helpers import Api
from tests.test_collab import YPeer, make_note


def state_of(size: int) -> bytes:
    doc: Doc[Any] = Doc()
    doc.get("body", type=Text).insert(0, "w" * size)
    return doc.get_update()


def test_warm_rooms_are_bounded_by_their_documents_size() -> None:
    rooms = Rooms(Database("postgresql://unused"), Hub(), warm=100,  # never connects
                  warm_bytes=2_500_000)
    ids = [uuid.uuid4() for _ in range(4)]
    for nid in ids:
        rooms.release(rooms.get(nid, state_of(1_000_000)))
    assert list(rooms.rooms) == ids[2:]  # the two most recently used fit
    assert sum(r.size for r in rooms.rooms.values()) <= 2_500_000


def announce(client_ids: range, clock: int = 1, pad: str = "") -> bytes:
    return yproto.encode_awareness(yproto.encode_awareness_update(
        yproto.AwarenessEntry(c, clock, json.dumps({"user": c, "pad": pad}))
        for c in client_ids))


def test_awareness_past_its_bounds_closes_only_that_peer(server: ServerProcess,
                                                         api: Api) -> None:
    owner = api.user("owner")
    nid = make_note(owner, "x")
    with YPeer(server, nid, owner.token) as bystander:
        bystander.sync()
        for frame, code in [(announce(range(PEER_AWARENESS + 1)), 4409),
                            (announce(range(1), pad="p" * AWARENESS_STATE_BYTES), 1009)]:
            with YPeer(server, nid, owner.token) as bad:
                bad.sync()  # answered the server's step 1 before being closed
                bad.send(frame)
                assert bad.wait_closed() == code and bad.denied
        bystander.send(announce(range(PEER_AWARENESS)))  # the most one peer may announce
        assert bystander.pump(lambda: len(bystander.awareness) == PEER_AWARENESS)
        assert bystander.close_code is None


def test_a_room_holds_a_bounded_number_of_awareness_states(server: ServerProcess,
                                                           api: Api) -> None:
    owner = api.user("owner")
    nid = make_note(owner, "x")
    peers = [YPeer(server, nid, owner.token) for _ in range(AWARENESS_STATES // PEER_AWARENESS)]
    try:
        for i, peer in enumerate(peers):
            peer.send(announce(range(i * PEER_AWARENESS, (i + 1) * PEER_AWARENESS)))
        with YPeer(server, nid, owner.token) as late:
            late.sync()
            # the room is full: a newcomer is greeted with every state, and refused its own
            assert late.pump(lambda: len({e.client_id for e in late.awareness})
                             == AWARENESS_STATES)
            late.send(announce(range(10**6, 10**6 + 1)))
            assert late.wait_closed() == 1013 and late.denied
        peers[0].ws.close()  # one leaves: its states are removed, and room is made
        with YPeer(server, nid, owner.token) as later:
            later.send(announce(range(10**6, 10**6 + 1)))
            assert later.pump(lambda: any(e.client_id == 10**6 for e in later.awareness))
            assert later.close_code is None
    finally:
        for peer in peers:
            peer.__exit__(None, None, None)
