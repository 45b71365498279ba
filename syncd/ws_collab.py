"""The collab socket, `/v1/collab/{note_id}?token=…`: y-websocket on a note's body.

Connect: the token is checked, the note must exist and be visible to the user (its owner
or a member of its project; a viewer may only read). A refused peer gets the y-protocols
permission-denied message, then the close: 4401 bad token, 4404 no such note, 4403 a note
the user cannot see. Then the server sends sync step 1 and the awareness states it knows.

Per frame (binary; a text frame closes with 4409, a frame over MAX_DOC_BYTES with 1009):
every message is decoded first (yproto; garbage closes with 4409 and nothing is applied),
then handled in order:

- step 1 → step 2 with what the client lacks; step 2 / update → validated from its bytes
  and on a scratch document (merge.check_update, check_applies), applied to the room
  (rooms.py), broadcast to the other peers and written behind to the log; a viewer's is
  refused with permission-denied;
- awareness → relayed to every peer of the note, the sender included (the stock client
  counts its own echo as a sign of life and reconnects after 30 s without one), on every
  node (rooms.py publishes it on the bus's per-note channel), and remembered per
  connection so that a disconnect broadcasts its removal everywhere; never stored;
- query-awareness → every current awareness state (local, and other nodes' seen here).

Each connection also holds a hub subscriber for its user (`NoteWatch`): `text`/`put`
events of the note from the sync path are merged into the room, a `revoke` of the note
closes with 4403, a revoked device with 4401, and with Redis the bus subscribes this
node to the user's channel, so changes committed on another node reach the room too.
Sends go through a bounded per-connection queue: a peer that does not read is closed with
4408 instead of holding memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from uuid import UUID

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from syncd import yproto
from syncd.api.common import services
from syncd.errors import OpRejected, SyncdError
from syncd.fanout import Subscriber
from syncd.limits import MAX_DOC_BYTES
from syncd.merge import check_applies, check_update
from syncd.messages import Event
from syncd.rooms import EMPTY_UPDATE, DocTooLarge, Room, Rooms
from syncd.services import Services
from syncd.types import WRITE_ROLES, Principal

log = logging.getLogger("syncd.collab")

MAX_FRAME = MAX_DOC_BYTES  # a frame bigger than a whole document cannot be valid
SEND_QUEUE = 1024  # frames waiting for a slow peer before it is closed with 4408
CLOSE_TIMEOUT = 5.0


class _Close(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def rooms_of(ws: WebSocket, svc: Services) -> Rooms:
    rooms: Rooms | None = getattr(ws.app.state, "collab_rooms", None)
    if rooms is None or rooms.db is not svc.db:
        rooms = Rooms(svc.db, svc.hub)
        ws.app.state.collab_rooms = rooms
    return rooms


class Connection:
    """One collab socket: the peer side of a room, with a bounded send queue."""

    def __init__(self, ws: WebSocket, who: Principal, role: str) -> None:
        self.ws = ws
        self.who = who
        self.role = role
        self.out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closing: tuple[int, str] | None = None
        self.awareness = yproto.AwarenessClients()

    @property
    def can_write(self) -> bool:
        return self.role in WRITE_ROLES

    def send(self, frame: bytes) -> None:
        if self.closing is not None:
            return
        if self.out.qsize() >= SEND_QUEUE:
            self.close(4408, "too slow")
            return
        self.out.put_nowait(frame)

    def close(self, code: int, reason: str) -> None:
        if self.closing is None:
            self.closing = (code, reason)
            self.out.put_nowait(None)

    async def sender(self) -> None:
        while True:
            frame = await self.out.get()
            if self.closing is not None:
                code, reason = self.closing
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.ws.close(code, reason), CLOSE_TIMEOUT)
                return
            if frame is not None:
                await self.ws.send_bytes(frame)


class NoteWatch(Subscriber):
    """A hub subscriber that feeds the note's events into its room instead of a queue."""

    def __init__(self, who: Principal, note_id: UUID) -> None:
        super().__init__(who.user_id, who.device_id, limit=1)
        self.note_id = note_id
        self.room: Room | None = None
        self.conn: Connection | None = None
        self.early: list[Event] = []

    def offer(self, events: list[Event]) -> None:
        if not events:  # a nudge from the bus: something may have been missed
            if self.room is not None:
                asyncio.get_running_loop().create_task(self.room.refresh())
            return
        for event in events:
            if event.entity != "note" or event.id != self.note_id:
                continue
            if self.room is None:
                self.early.append(event)
            else:
                self._feed(event)

    def _feed(self, event: Event) -> None:
        assert self.room is not None
        if event.kind == "text":
            self.room.on_event(self.user_id, event.seq, event.update)
        elif event.kind == "put":
            self.room.on_event(self.user_id, event.seq, event.body_state)
        elif event.kind == "revoke" and self.conn is not None:
            self.conn.close(4403, "access to this note was revoked")

    def attach(self, room: Room, conn: Connection) -> None:
        self.room, self.conn = room, conn
        early, self.early = self.early, []
        for event in early:
            self._feed(event)

    def close(self, reason: str) -> None:
        self.closed = reason
        if self.conn is not None:
            self.conn.close(4401, reason)


async def _refuse(ws: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await ws.send_bytes(yproto.encode_permission_denied(reason))
        await ws.close(code, reason)


async def _load_note(svc: Services, note_id: UUID, user: UUID) -> dict[str, Any] | None:
    async def tx(conn: Any) -> dict[str, Any] | None:
        cur = await conn.execute(
            """SELECT n.owner_id, n.body_state, m.role FROM notes n
               LEFT JOIN members m ON m.project_id = n.project_id AND m.user_id = %s
               WHERE n.id = %s""", (user, note_id))
        row: dict[str, Any] | None = await cur.fetchone()
        return row

    return await svc.db.run(tx, read_only=True)


async def collab(ws: WebSocket) -> None:
    svc = services(ws)
    await ws.accept()
    try:
        who = await svc.auth.authenticate(ws.query_params.get("token"))
    except SyncdError as e:
        await _refuse(ws, 4401, e.message)
        return
    try:
        note_id = UUID(ws.path_params["note_id"])
    except ValueError:
        await _refuse(ws, 4404, "no such note")
        return
    hub = svc.hub
    watch = NoteWatch(who, note_id)
    hub.subscribe(watch)  # before reading the row: nothing committed after it is missed
    try:
        row = await _load_note(svc, note_id, who.user_id)
        if row is None:
            await _refuse(ws, 4404, "no such note")
            return
        role = "owner" if row["owner_id"] == who.user_id else row["role"]
        if role is None:
            await _refuse(ws, 4403, "this note is not shared with you")
            return
        rooms = rooms_of(ws, svc)
        state = row["body_state"]
        room = rooms.get(note_id, bytes(state) if state else None)
        conn = Connection(ws, who, role)
        room.join(conn)
        watch.attach(room, conn)
        svc.metrics.open_sockets.inc()
        try:
            await _serve(room, conn)
        finally:
            svc.metrics.open_sockets.dec()
            room.leave(conn, dict(conn.awareness.clocks))
            rooms.release(room)
    finally:
        hub.unsubscribe(watch)


async def _serve(room: Room, conn: Connection) -> None:
    conn.send(yproto.encode_sync_step1(room.state_vector()))
    entries = room.awareness_entries()
    if entries:
        conn.send(yproto.encode_awareness(yproto.encode_awareness_update(entries)))
    sender = asyncio.create_task(conn.sender())
    reader = asyncio.create_task(_read(room, conn))
    try:
        done, _ = await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
        if reader in done:
            exc = reader.exception()
            if isinstance(exc, _Close):
                conn.close(exc.code, exc.reason)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sender, CLOSE_TIMEOUT + 1)
            elif exc is not None and not isinstance(exc, WebSocketDisconnect):
                log.error("collab socket failed", exc_info=exc)
                conn.close(1011, "internal error")
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sender, CLOSE_TIMEOUT + 1)
    finally:
        for task in (sender, reader):
            task.cancel()
        await asyncio.gather(sender, reader, return_exceptions=True)


async def _read(room: Room, conn: Connection) -> None:
    while True:
        message = await conn.ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        data = message.get("bytes")
        if data is None:
            raise _Close(4409, "text frames are not part of the y-websocket protocol")
        if len(data) > MAX_FRAME:
            raise _Close(1009, f"frame over {MAX_FRAME} bytes")
        try:
            messages = yproto.decode_frame(data, max_payload=MAX_FRAME)
        except yproto.ProtocolError as e:
            raise _Close(4409, str(e)[:120]) from None
        for msg in messages:
            _handle(room, conn, msg)


def _handle(room: Room, conn: Connection, msg: yproto.Message) -> None:
    match msg:
        case yproto.SyncStep1(state_vector):
            try:
                diff = room.diff(state_vector)
            except BaseException as e:  # pycrdt: pyo3 PanicException on a bad state vector
                if isinstance(e, KeyboardInterrupt | SystemExit):
                    raise
                raise _Close(4409, "not a valid state vector") from None
            conn.send(yproto.encode_sync_step2(diff))
        case yproto.SyncStep2(update) | yproto.Update(update):
            if not update or update == EMPTY_UPDATE:
                return
            if not conn.can_write:
                conn.send(yproto.encode_permission_denied("viewers cannot edit this note"))
                return
            try:
                check_update(update)
                check_applies(update)
            except OpRejected:
                raise _Close(4409, "not a valid Yjs update") from None
            try:
                room.apply_from_peer(conn.who, update, conn)
            except DocTooLarge as e:
                raise _Close(1009, str(e)) from None
        case yproto.Awareness(update):
            try:
                entries = yproto.decode_awareness(update, max_payload=MAX_FRAME)
            except yproto.ProtocolError as e:
                raise _Close(4409, str(e)[:120]) from None
            conn.awareness.observe(entries)
            room.awareness_from_peer(update, entries)
        case yproto.QueryAwareness():
            entries = room.awareness_entries()
            if entries:
                conn.send(yproto.encode_awareness(yproto.encode_awareness_update(entries)))
        case yproto.Auth():
            pass  # a client has nothing to ask permission for; harmless


routes = [WebSocketRoute("/v1/collab/{note_id}", collab)]
