"""Collab rooms: one in-memory Yjs document per hot note, its peers, and its write-behind.

A `Room` holds the note's `pycrdt` Doc (root Text `body`), the connected peers, the
awareness states they announced, and a queue of document changes not yet in the log.

- Changes are captured with `Doc.observe` (`Captured`): what a transaction really added
  (the delta), so an update the room already has (a reconnect's sync step 2) yields
  nothing and is neither broadcast nor appended.
- A peer's update is admitted before it touches the document (`admit`): only what the
  room lacks is looked at (a reconnect's step 2 repeats the document), and it is refused,
  for that peer alone, when the log would refuse it: by its own bytes (not an update, a
  root other than `body`, a nested type, NUL: `merge.check_update`), when yrs cannot
  apply it (`merge.check_applies`), or past MAX_DOC_BYTES. Once applied an update is
  relayed and cannot be taken back, so nothing the log will refuse may get that far.
- Peer changes are broadcast at once and handed to the write-behind (writebehind.py):
  a room's changes wait out a window (`SYNCD_COLLAB_COALESCE`), then go to the log by
  author, in one transaction with that author's other rooms due by then. A note deleted with its
  owner's account closes the room's peers with 4404; a write that fails (the database)
  drops the room and closes its peers with 1011: they reconnect, the fresh room loads the
  note from PostgreSQL, and the peers' sync step 2 sends back whatever was not persisted.
- Changes made through the sync path (device pushes, REST) arrive as hub events and are
  merged in (`merge_external`) and broadcast, never written again.

Awareness is relayed, never stored. With a bus (REDIS_URL), a room with local peers
subscribes to the note's channel (`hub.docs`): every awareness update from a local peer,
and the removal when one disconnects, is published with the node id; what other nodes
publish is broadcast to the local peers and remembered (the latest state per client id,
at most `REMOTE_AWARENESS`, forgotten after `REMOTE_TTL` without renewal: live y-protocols
clients renew every 15 s) to answer query-awareness and greet newcomers. On each
(re)subscription the room publishes its peers' states and asks the other nodes for theirs
(a query-awareness on the channel, answered with local states only), so whichever of two
nodes subscribes last, each learns the other's. The bus drops awareness under pressure.

`Rooms` is the registry and a service the app's lifespan starts and stops: rooms with
peers are always kept; idle ones stay warm (LRU) so a reconnect does not rebuild the
document, at most `warm` of them holding at most `warm_bytes` (`SYNCD_COLLAB_WARM_BYTES`).
A peer joining a room that has open peers takes the room's document as it is
(`Rooms.live`), without the note's stored state: their hub subscribers kept it current; a
new room, or any other, is given the stored state (`Rooms.get`, counted in
`documents_read`).
Stopping it (SIGTERM, SIGINT: after the sockets closed) writes everything queued at
once, without waiting out the coalescing window.

Awareness is bounded too: a state's bytes, the clients one connection announces, the
states a room holds (`admit_awareness`), so what greets a newcomer stays small.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from types import TracebackType
from typing import Any, Protocol
from uuid import UUID

from pycrdt import Doc, Text, TransactionEvent, get_update, merge_updates

from syncd import writebehind
from syncd.db import Database
from syncd.errors import OpRejected
from syncd.fanout import DocChannels, Hub
from syncd.frames import Flusher, Outgoing
from syncd.limits import MAX_DOC_BYTES
from syncd.merge import BODY, check_applies, check_update
from syncd.outbox import Tally
from syncd.types import Principal
from syncd.writebehind import WriteBehind
from syncd.yproto import (
    Awareness,
    AwarenessEntry,
    ProtocolError,
    QueryAwareness,
    decode_awareness,
    decode_frame,
    encode_awareness,
    encode_awareness_update,
    encode_query_awareness,
    removal_update,
)

log = logging.getLogger("syncd.collab")

WARM_ROOMS = 256  # idle documents kept in memory after their last peer left
WARM_BYTES = 64 * 1024 * 1024  # and their documents' total size
PEER_BYTES = 2 * MAX_DOC_BYTES  # what may wait for one peer: a merged backlog fits twice
SEND_BUFFER = 256 * 1024  # a peer's kernel send buffer: past it, its updates wait merged
EMPTY_UPDATE = b"\x00\x00"
REMOTE_AWARENESS = 1024  # awareness states from other nodes a room remembers
AWARENESS_STATES = 512  # states of local peers a room holds (each newcomer gets them all)
PEER_AWARENESS = 8  # awareness clients one connection may announce (a stock client: one)
AWARENESS_STATE_BYTES = 8 * 1024  # one state's JSON (a name, a colour, a cursor)
REMOTE_TTL = 30.0  # seconds a remote state is kept without renewal (y-protocols' timeout)


class Peer(Protocol):
    @property
    def open(self) -> bool: ...  # not closing (a closing peer may have lost its access)

    def deliver(self, out: Outgoing) -> None: ...  # one of a broadcast's recipients

    def close(self, code: int, reason: str) -> None: ...


class Refused(Exception):
    """A peer's update the log would refuse: that peer is told and closed with `close_code`
    (4409 bytes pycrdt cannot read, 4422 refused as a push's op would be, 1009 too large);
    the room is untouched."""

    def __init__(self, close_code: int, reason: str) -> None:
        super().__init__(reason)
        self.close_code = close_code
        self.reason = reason


class Captured(list[bytes]):
    """The document's observer: what its transactions really added. Not a method of the
    Room: held by the document's Rust side, that would make a cycle (room → document →
    callback → room) Python's collector cannot see, and no evicted room would be freed."""

    def __call__(self, event: TransactionEvent) -> None:
        if event.update and event.update != EMPTY_UPDATE:
            self.append(event.update)


class Room:
    def __init__(self, note_id: UUID, state: bytes | None, rooms: Rooms) -> None:
        self.note_id = note_id
        self.db = rooms.db
        self.hub = rooms.hub
        self.rooms = rooms
        self.doc: Doc[Any] = Doc()
        self.doc.get(BODY, type=Text)
        self._captured = Captured()
        self._sub = self.doc.observe(self._captured)
        self.size = 0
        self.peers: set[Peer] = set()
        self.awareness: dict[int, AwarenessEntry] = {}  # announced by local peers
        self.remote: OrderedDict[int, tuple[AwarenessEntry, float]] = OrderedDict()
        self.channel: DocChannels | None = None  # the bus, while the room has peers
        self.unwritten = 0  # changes the write-behind holds for the log (writebehind.py)
        self.seen: dict[UUID, int] = {}  # per user log: the last event seq merged in
        self.failed = False
        if state:
            self.merge_external(state)

    # --- the document -----------------------------------------------------------------------

    def _apply(self, update: bytes) -> bytes | None:
        """Apply an already validated update; return what it changed, if anything."""
        self._captured.clear()
        self.doc.apply_update(update)
        delta = list(self._captured)
        self._captured.clear()
        if not delta:
            return None
        merged = delta[0] if len(delta) == 1 else merge_updates(*delta)
        self.size += len(merged)
        return merged

    def state_vector(self) -> bytes:
        return self.doc.get_state()

    def diff(self, state_vector: bytes) -> bytes:
        return self.doc.get_update(state_vector)

    def text(self) -> str:
        return str(self.doc.get(BODY, type=Text))

    def admit(self, update: bytes) -> bytes:
        """What of a peer's update the room lacks, if the log would take it; else Refused."""
        try:
            new = get_update(update, self.doc.get_state())
        except BaseException as e:  # pycrdt: pyo3 PanicException on bytes it cannot read
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            raise Refused(4409, "not a valid Yjs update") from None
        try:
            writes = check_update(new)  # its own bytes: another root, a nested type, NUL
            if writes.from_zero:  # and yrs applies it (to a scratch document, where only
                check_applies(new)  # what starts at a clock 0 would be integrated)
        except OpRejected as e:  # what the log would answer a push with: `rejected`
            raise Refused(4422, f"{e.code}: {e.message}") from None
        if self.size + len(new) > MAX_DOC_BYTES:
            # `size` only grows (the updates applied); what the log stores is the state,
            # smaller after deletions: measure it before refusing.
            self.size = len(self.doc.get_update())
            if self.size + len(new) > MAX_DOC_BYTES:
                raise Refused(1009, f"the document would exceed {MAX_DOC_BYTES} bytes")
        return new

    def apply_from_peer(self, who: Principal, update: bytes, origin: Peer) -> bool:
        """A peer's update: admit, apply, broadcast to the others, queue the write. The
        caller passes only updates of a peer that can write the note now: what is queued
        is written as vouched for (writebehind.py)."""
        delta = self._apply(self.admit(update))
        if delta is None:
            return False
        self.broadcast_update(delta, exclude=origin)
        self.rooms.writes.add(who, self, delta)
        return True

    def merge_external(self, update: bytes) -> None:
        """A change that is already in the log (sync path, another node, the row): merge and
        broadcast it; never written again."""
        try:
            delta = self._apply(update)
        except BaseException as e:  # pycrdt raises pyo3 PanicException on bad bytes
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            log.warning("note %s: could not merge a stored update: %r", self.note_id, e)
            return
        if delta is not None and self.peers:
            self.broadcast_update(delta)

    def on_event(self, user: UUID, seq: int, update: bytes | None) -> None:
        """A hub event for this note, from `user`'s log (each user's copy arrives once per
        subscribed connection: the seq dedupes)."""
        if seq <= self.seen.get(user, 0):
            return
        self.seen[user] = seq
        if update:
            self.merge_external(update)

    async def refresh(self) -> None:
        """Merge the stored body (after a bus nudge: something may have been missed)."""

        async def tx(conn: Any) -> bytes | None:
            cur = await conn.execute("SELECT body_state FROM notes WHERE id = %s",
                                     (self.note_id,))
            row = await cur.fetchone()
            return row["body_state"] if row else None

        try:
            state = await self.db.run(tx, read_only=True)
        except Exception:
            log.exception("note %s: refresh failed", self.note_id)
            return
        if state:
            self.merge_external(bytes(state))

    # --- peers ------------------------------------------------------------------------------

    def join(self, peer: Peer) -> None:
        self.peers.add(peer)
        if self.channel is None and self.hub.docs is not None:
            self.channel = self.hub.docs
            self.channel.subscribe_doc(self.note_id, self._from_node)

    def leave(self, peer: Peer, clocks: dict[int, int]) -> None:
        """`peer` is gone: remove the awareness clients it announced (`clocks`) here and on
        the other nodes; the last peer unsubscribes the room from the note's channel."""
        self.peers.discard(peer)
        if clocks:
            self.forget_awareness(list(clocks))
            frame = encode_awareness(removal_update(clocks))
            self.broadcast(frame)
            self._publish(frame)
        if not self.peers and self.channel is not None:
            self.channel.unsubscribe_doc(self.note_id, self._from_node)
            self.channel = None
            self.remote.clear()

    def broadcast(self, frame: bytes, exclude: Peer | None = None) -> None:
        self._deliver(Outgoing(frame, update=False), exclude)

    def broadcast_update(self, update: bytes, exclude: Peer | None = None) -> None:
        self._deliver(Outgoing(update, update=True), exclude)

    def _deliver(self, out: Outgoing, exclude: Peer | None) -> None:
        for peer in list(self.peers):
            if peer is not exclude:
                peer.deliver(out)

    def awareness_entries(self) -> list[AwarenessEntry]:
        """Every awareness state known here: local peers', and other nodes' still fresh."""
        now = time.monotonic()
        merged: dict[int, AwarenessEntry] = {}
        for client_id, (entry, seen) in list(self.remote.items()):
            if now - seen > REMOTE_TTL:
                del self.remote[client_id]
            else:
                merged[client_id] = entry
        for client_id, entry in self.awareness.items():
            known = merged.get(client_id)
            if known is None or entry.clock >= known.clock:
                merged[client_id] = entry
        return list(merged.values())

    def admit_awareness(self, announced: dict[int, int], entries: list[AwarenessEntry]) -> None:
        """Refuse an awareness update past the bounds: a state over AWARENESS_STATE_BYTES, a
        peer announcing more than PEER_AWARENESS clients (`announced`: its clients so far),
        a room holding AWARENESS_STATES. What a newcomer is greeted with stays bounded."""
        if any(len(e.state.encode()) > AWARENESS_STATE_BYTES for e in entries):
            raise Refused(1009, f"an awareness state is limited to {AWARENESS_STATE_BYTES} bytes")
        fresh = {e.client_id for e in entries if not e.removed} - announced.keys()
        if len(announced) + len(fresh) > PEER_AWARENESS:
            raise Refused(4409, f"a connection announces at most {PEER_AWARENESS} clients")
        if len(fresh - self.awareness.keys()) + len(self.awareness) > AWARENESS_STATES:
            raise Refused(1013, "this note has too many peers; try again later")

    def awareness_from_peer(self, update: bytes, entries: list[AwarenessEntry]) -> None:
        """A local peer's admitted awareness update: to every local peer (the sender too)
        and to the other nodes."""
        self.observe_awareness(entries)
        frame = encode_awareness(update)
        self.broadcast(frame)
        self._publish(frame)

    def observe_awareness(self, entries: list[AwarenessEntry]) -> None:
        for entry in entries:
            if entry.removed:
                self.awareness.pop(entry.client_id, None)
            else:
                known = self.awareness.get(entry.client_id)
                if known is None or entry.clock >= known.clock:
                    self.awareness[entry.client_id] = entry

    def forget_awareness(self, client_ids: list[int]) -> None:
        for client_id in client_ids:
            self.awareness.pop(client_id, None)

    # --- other nodes (the bus's per-note channel) -------------------------------------------

    def _publish(self, frame: bytes) -> None:
        if self.channel is not None:
            self.channel.publish_doc(self.note_id, frame)

    def _from_node(self, data: bytes | None) -> None:
        """A y-websocket frame another node published on the note's channel; None when the
        room's subscription (re)started and whatever was published before is unknown."""
        if data is None:  # announce ours and ask for theirs: whichever node subscribed
            self.remote.clear()  # last, the other one hears it
            local = list(self.awareness.values())
            announce = encode_awareness(encode_awareness_update(local)) if local else b""
            self._publish(announce + encode_query_awareness())
            return
        try:
            messages = decode_frame(data)
        except ProtocolError as e:
            log.warning("note %s: ignoring a malformed awareness frame from the bus: %s",
                        self.note_id, e)
            return
        for msg in messages:
            if isinstance(msg, QueryAwareness):
                local = list(self.awareness.values())  # never echo other nodes' states
                if local:
                    self._publish(encode_awareness(encode_awareness_update(local)))
            elif isinstance(msg, Awareness):
                try:
                    entries = decode_awareness(msg.update)
                except ProtocolError as e:
                    log.warning("note %s: ignoring bad awareness from the bus: %s",
                                self.note_id, e)
                    continue
                self._observe_remote(entries)
                self.broadcast(encode_awareness(msg.update))

    def _observe_remote(self, entries: list[AwarenessEntry]) -> None:
        now = time.monotonic()
        for entry in entries:
            known = self.remote.get(entry.client_id)
            if known is not None and entry.clock < known[0].clock:
                continue
            if entry.removed:
                self.remote.pop(entry.client_id, None)
                continue
            self.remote[entry.client_id] = (entry, now)
            self.remote.move_to_end(entry.client_id)
            while len(self.remote) > REMOTE_AWARENESS:
                self.remote.popitem(last=False)

    def fail(self, code: int = 1011, reason: str = "could not store the document; reconnect"
             ) -> None:
        """Drop this room: its peers reconnect and resync against the stored document."""
        if self.failed:
            return
        self.failed = True  # the write-behind drops what it holds of this room
        for peer in list(self.peers):
            peer.close(code, reason)
        self.rooms.dropped(self)

class Rooms:
    """Rooms by note id: every room with peers, plus at most `warm` idle ones (LRU).

    A service: `async with Rooms(...)` in the app's lifespan; leaving it drains every
    room's write-behind. `tally` counts the bytes queued for this node's collab peers."""

    def __init__(self, db: Database, hub: Hub, *, warm: int = WARM_ROOMS,
                 warm_bytes: int = WARM_BYTES, coalesce: float = writebehind.COALESCE,
                 peer_bytes: int = PEER_BYTES, send_buffer: int = SEND_BUFFER) -> None:
        self.db = db
        self.hub = hub
        self.warm = warm
        self.warm_bytes = warm_bytes
        self.peer_bytes = peer_bytes
        self.send_buffer = send_buffer  # each peer's kernel send buffer (frames.Direct)
        self.flusher = Flusher()  # writes what each turn of the loop queued for the peers
        self.tally = Tally()
        self.writes = WriteBehind(db, hub, coalesce)
        self.rooms: OrderedDict[UUID, Room] = OrderedDict()
        self.documents_read = 0  # stored documents taken into a room (`get`), for /metrics

    async def __aenter__(self) -> Rooms:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Write everything queued to the log now (the server is stopping)."""
        await self.writes.drain()

    def live(self, note_id: UUID) -> Room | None:
        """The note's room if it has an open peer: a joining peer takes its document as it
        is. Every change committed since the room read the stored document reached it
        through its peers' hub subscribers (each subscribed before its room was read, and
        a nudge re-reads the body), and what it holds but has not written yet is only
        here; so neither reading the note's state again nor re-applying it (the whole
        document, for every join) would add anything. A closing peer does not count: it
        may be closing for lost access, after which its user's log no longer carries the
        note's changes."""
        room = self.rooms.get(note_id)
        if room is None or room.failed or not any(peer.open for peer in room.peers):
            return None
        self.rooms.move_to_end(note_id)
        return room

    def get(self, note_id: UUID, state: bytes | None) -> Room:
        """The note's room, created from `state` or, when warm, with `state` merged in (an
        idle room heard nothing while it had no peers). `state` is the note's stored
        document, read after the joining peer's hub subscriber started."""
        self.documents_read += 1
        room = self.rooms.get(note_id)
        if room is None or room.failed:
            room = Room(note_id, state, self)
            self.rooms[note_id] = room
        elif state:
            room.merge_external(state)
        self.rooms.move_to_end(note_id)
        return room

    def dropped(self, room: Room) -> None:
        if self.rooms.get(room.note_id) is room:
            del self.rooms[room.note_id]

    def release(self, room: Room) -> None:
        """A peer left: evict the least recently used idle rooms past the bounds (how many,
        and their documents' total size)."""
        idle = [r for r in self.rooms.values() if not r.peers and not r.unwritten]
        held = sum(r.size for r in idle)
        for count, old in enumerate(idle):
            if len(idle) - count <= self.warm and held <= self.warm_bytes:
                break
            del self.rooms[old.note_id]
            held -= old.size
