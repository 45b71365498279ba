"""Collab under load and at shutdown, against real syncd processes.

Fifty pycrdt peers type flat out into one note: peers fall behind, and what waits for
them is merged rather than closing them; all converge and the stored document equals
theirs. A SIGTERM inside the write-behind's coalescing window still stores the edit,
with no peer reconnecting to send it again. A peer that stops reading altogether is
closed with 4408, and what waited for it never exceeded its byte budget (the server's
own accounting, read from /metrics).
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import socket
import uuid
from pathlib import Path
from typing import Any

from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as connect_sync

from syncd import yproto
from tests.fix_server import ServerProcess
from tests.helpers import Api, Device
from tests.test_collab import YPeer, make_note, stored_text, wait_stored

PEERS = 50
EDITS = 60  # per peer: 50 × 60 updates, each relayed to 49 peers
PIECE = "typing " * 15  # 105 characters a keystroke burst


class AsyncPeer:
    """A y-websocket peer on asyncio: a pycrdt Doc that applies whatever arrives."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.doc: Doc[Any] = Doc()
        self.text = self.doc.get("body", type=Text)
        self.synced = asyncio.Event()
        self.changed = asyncio.Event()
        self.reading = asyncio.Event()  # cleared: the peer is busy and reads nothing
        self.reading.set()
        self.close_code: int | None = None
        # updates that changed nothing here: sent before one they build on (the text only
        # grows in these tests, and the server relays in the order it applied)
        self.held = 0

    async def read(self) -> None:
        try:
            async for frame in self.ws:
                await self.reading.wait()
                assert isinstance(frame, bytes)
                for msg in yproto.decode_frame(frame):
                    match msg:
                        case yproto.SyncStep1(sv):
                            await self.ws.send(yproto.encode_sync_step2(self.doc.get_update(sv)))
                        case yproto.SyncStep2(update):
                            self.doc.apply_update(update)
                            self.synced.set()
                        case yproto.Update(update):
                            before = len(self.text)
                            self.doc.apply_update(update)
                            self.held += len(self.text) == before
                self.changed.set()
        except ConnectionClosed:
            pass
        self.close_code = self.ws.close_code
        self.changed.set()

    async def type_flat_out(self, edits: int, rng: random.Random) -> None:
        """Type `edits` keystrokes, then send them back to back, as fast as the socket
        takes them: a burst that leaves every other peer behind."""
        frames = []
        for _ in range(edits):
            before = self.doc.get_state()
            self.text.insert(rng.randint(0, len(self.text)), PIECE)
            frames.append(yproto.encode_update(self.doc.get_update(before)))
        for frame in frames:
            await self.ws.send(frame)

    async def paste(self, pastes: int, rng: random.Random) -> None:
        """Paste `pastes` times at random places, one update a frame, back to back."""
        for _ in range(pastes):
            before = self.doc.get_state()
            self.text.insert(rng.randint(0, len(self.text)), PASTE)
            await self.ws.send(yproto.encode_update(self.doc.get_update(before)))

    async def wait_length(self, length: int) -> None:
        while len(self.text) < length and self.close_code is None:
            self.changed.clear()
            await self.changed.wait()


def test_fifty_peers_flat_out_none_closed_all_converge_and_stored(
        server: ServerProcess, api: Api) -> None:
    owner = api.user("owner")
    nid = make_note(owner, "start")
    url = f"{server.ws_url}/v1/collab/{nid}?token={owner.token}"
    final = len("start") + PEERS * EDITS * len(PIECE)

    async def main() -> list[AsyncPeer]:
        conns = [await connect(url, max_size=None, compression=None) for _ in range(PEERS)]
        peers = [AsyncPeer(ws) for ws in conns]
        readers = [asyncio.create_task(p.read()) for p in peers]
        try:
            async with asyncio.timeout(240):
                for p in peers:
                    await p.ws.send(yproto.encode_sync_step1(p.doc.get_state()))
                await asyncio.gather(*(p.synced.wait() for p in peers))
                for p in peers:  # everyone types a burst and reads nothing meanwhile
                    p.reading.clear()
                await asyncio.gather(*(p.type_flat_out(EDITS, random.Random(i))
                                       for i, p in enumerate(peers)))
                await asyncio.sleep(2)  # the server relays into sockets nobody reads
                for p in peers:
                    p.reading.set()
                await asyncio.gather(*(p.wait_length(final) for p in peers))
        finally:
            for ws in conns:
                await ws.close()
            await asyncio.gather(*readers, return_exceptions=True)
        return peers

    peers = asyncio.run(main())
    # close codes are read after the test's own close: 1000 is ours, anything else the server's
    assert [p.close_code for p in peers] == [1000] * PEERS
    texts = {str(p.text) for p in peers}
    assert len(texts) == 1
    text = texts.pop()
    assert len(text) == final
    wait_stored(owner, nid, text, timeout=30)


def test_sigterm_inside_the_coalescing_window_stores_the_edit(
        pg_url: str, tmp_root: Path) -> None:
    # A window far longer than the test: the edit is certainly still waiting in it.
    node = ServerProcess(pg_url, tmp_root / f"term-{uuid.uuid4().hex[:8]}",
                         env={"SYNCD_COLLAB_COALESCE": "120"})
    node.start()
    try:
        with Api(node.base_url) as api:
            owner: Device = api.user("owner")
            nid = make_note(owner, "draft")
            with YPeer(node, nid, owner.token) as writer, \
                    YPeer(node, nid, owner.token) as reader:
                writer.sync(), reader.sync()
                writer.edit(lambda t: t.insert(len(t), " kept"))
                # the other peer has it: the room applied it and queued its write
                assert reader.wait_text(lambda s: s == "draft kept")
                assert stored_text(owner, nid) == "draft"  # not written yet
                assert node.proc is not None
                node.proc.send_signal(signal.SIGTERM)
                assert node.proc.wait(60) == 0, node.log()
        node.start()  # no peer reconnects: the edit must be in PostgreSQL already
        with Api(node.base_url) as api:
            again = api.login(owner.email, "again")
            assert stored_text(again, nid) == "draft kept"
    finally:
        node.stop()


def metric(api: Api, name: str) -> float:
    for line in api.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def test_a_peer_that_stops_reading_is_closed_within_its_byte_budget(
        pg_url: str, tmp_root: Path) -> None:
    budget = 256 * 1024
    node = ServerProcess(pg_url, tmp_root / f"slow-{uuid.uuid4().hex[:8]}",
                         env={"SYNCD_COLLAB_PEER_BYTES": str(budget)})
    node.start()
    try:
        with Api(node.base_url) as api:
            owner = api.user("owner")
            nid = make_note(owner, "x")
            url = f"{node.ws_url}/v1/collab/{nid}?token={owner.token}"
            with connect_sync(url, max_size=None, max_queue=1) as stopped, \
                    YPeer(node, nid, owner.token) as talker:
                talker.sync()
                # Awareness is relayed, never merged: eight 7 kB states a frame fill
                # whatever the kernel buffers for the stopped peer, and then its outbox.
                pad = "x" * 7000
                for clock in range(1, 1000):
                    talker.send(yproto.encode_awareness(yproto.encode_awareness_update(
                        yproto.AwarenessEntry(c, clock, json.dumps({"c": c, "pad": pad}))
                        for c in range(8))))
                    talker.pump(timeout=0.01)  # the talker reads its echoes
                    if clock % 10 == 0 and metric(api, "syncd_collab_peers_over_budget_total"):
                        break
                assert metric(api, "syncd_collab_peers_over_budget_total") == 1
                assert 0 < metric(api, "syncd_collab_peer_peak_bytes") <= budget
                code = None
                try:
                    while True:
                        stopped.recv(timeout=30)
                except ConnectionClosed as e:
                    code = e.rcvd.code if e.rcvd else None
                assert code == 4408
                talker.pump(timeout=0.2)
                assert talker.close_code is None
    finally:
        node.stop()


SLOW = 4  # peers that stop reading while the others type
TYPISTS = 8
PASTE = "pasted " * 150  # about 1 kB an update: the kernel's buffers fill in seconds
PASTES = 16  # per typist a round
BACKLOG = 256 * 1024  # bytes the test makes wait in the server's queue per slow peer
SLOW_BUDGET = 2 * 1024 * 1024  # above that backlog
CATCH_UP_ROUNDS = 8  # pasted while the slow peers catch up
MAX_ROUNDS = 20  # 2.7 MB: many times what the kernel holds for a peer (SYNCD_COLLAB_SEND_BUFFER),
# and with the catch-up rounds still short of the document limit


async def slow_connect(url: str) -> ClientConnection:
    """A client whose socket holds little: a tiny receive buffer, and one frame queued in
    the library, so a peer that does not read pushes back on the server at once."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    return await connect(url, sock=sock, max_size=None, max_queue=1, compression=None)


def test_peers_that_fall_behind_get_merged_frames_and_stay(
        pg_url: str, tmp_root: Path) -> None:
    """Peers that read nothing (a tiny receive buffer, one frame queued in the client)
    while the others paste, round after round, until the kernel holds all it will for
    them and what follows waits in the server's own queue (its /metrics say how much).
    They stay, catch up through merged frames and converge: the queued updates went out
    inside one another's frames, and what waited never exceeded the budget."""
    node = ServerProcess(pg_url, tmp_root / f"behind-{uuid.uuid4().hex[:8]}",
                         env={"SYNCD_COLLAB_PEER_BYTES": str(SLOW_BUDGET)})
    node.start()
    try:
        with Api(node.base_url) as api:
            owner = api.user("owner")
            nid = make_note(owner, "start")
            url = f"{node.ws_url}/v1/collab/{nid}?token={owner.token}"

            async def main() -> tuple[list[AsyncPeer], int]:
                slow = [AsyncPeer(await slow_connect(url)) for _ in range(SLOW)]
                typists = [AsyncPeer(await connect(url, max_size=None, compression=None))
                           for _ in range(TYPISTS)]
                peers = slow + typists
                readers = [asyncio.create_task(p.read()) for p in peers]
                final = len("start")
                try:
                    async with asyncio.timeout(300):
                        for p in peers:
                            await p.ws.send(yproto.encode_sync_step1(p.doc.get_state()))
                        await asyncio.gather(*(p.synced.wait() for p in peers))
                        for p in slow:
                            p.reading.clear()
                        rounds = 0
                        while metric(api, "syncd_collab_queued_bytes") < SLOW * BACKLOG:
                            assert rounds < MAX_ROUNDS, "the slow peers never fell behind"
                            await asyncio.gather(*(p.paste(PASTES, random.Random(rounds * 100 + i))
                                                   for i, p in enumerate(typists)))
                            final += TYPISTS * PASTES * len(PASTE)
                            rounds += 1
                        # every typist has everything: the server has relayed it all
                        await asyncio.gather(*(p.wait_length(final) for p in typists))
                        assert metric(api, "syncd_collab_peers_over_budget_total") == 0
                        for p in slow:
                            p.reading.set()
                        for k in range(CATCH_UP_ROUNDS):  # typing goes on meanwhile
                            await asyncio.gather(*(p.paste(PASTES, random.Random(-k * 100 - i))
                                                   for i, p in enumerate(typists)))
                            final += TYPISTS * PASTES * len(PASTE)
                        await asyncio.gather(*(p.wait_length(final) for p in peers))
                finally:
                    for p in peers:
                        p.reading.set()  # a paused reader would hold up the close
                        await p.ws.close()
                    await asyncio.gather(*readers, return_exceptions=True)
                return peers, final

            peers, final = asyncio.run(main())
            assert [p.close_code for p in peers] == [1000] * len(peers)
            texts = {str(p.text) for p in peers}
            assert len(texts) == 1
            text = texts.pop()
            assert len(text) == final
            # straight to the socket or queued and merged, every frame kept its place
            assert [p.held for p in peers] == [0] * len(peers)
            # the slow peers' queued backlog went out merged: far fewer frames than updates
            queued_updates = SLOW * BACKLOG // (len(PASTE) + 64)
            assert metric(api, "syncd_collab_updates_merged_total") >= queued_updates / 2
            assert 0 < metric(api, "syncd_collab_peer_peak_bytes") <= SLOW_BUDGET
            # the typists read all along: their frames were written at the end of the
            # loop's turns (each round's at least one a typist), not by sender tasks
            assert metric(api, "syncd_collab_frames_direct_total") >= TYPISTS * CATCH_UP_ROUNDS
            wait_stored(owner, nid, text, timeout=30)
    finally:
        node.stop()
