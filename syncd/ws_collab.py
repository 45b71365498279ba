"""The collab socket, `/v1/collab/{note_id}?token=…`: y-websocket on a note's body.

Connect: the token is checked, the note must exist and be visible to the user (its owner
or a member of its project; a viewer may only read). A refused peer gets the y-protocols
permission-denied message, then the close: 4401 bad token, 4404 no such note, 4403 a note
the user cannot see. The peer joins the note's room: one that has an open peer as it is,
any other after the note's stored document is read into it (rooms.py, `Rooms.live`).
Then the server sends sync step 1 and the awareness states it knows.

Per frame (binary; a text frame closes with 4409, a frame over MAX_DOC_BYTES with 1009):
every message is decoded first (yproto; garbage closes with 4409 and nothing is applied),
then handled in order:

- step 1 → step 2 with what the client lacks; step 2 / update → admitted by the room
  (rooms.py: what the room lacks must pass the log's checks, merge.check_update and
  check_applies, and stay within MAX_DOC_BYTES), applied, broadcast to the other peers
  and written behind to the log; a viewer's is refused with permission-denied and the
  socket stays open for reading; a refused one gets permission-denied with the reason,
  then the close (4409 bytes pycrdt cannot read, 4422 refused as a push's op would be,
  1009 too large), for that peer alone;
- awareness → admitted (bounded: a state's bytes, clients per connection, states per
  room; rooms.py), relayed to every peer of the note, the sender included (the stock client
  counts its own echo as a sign of life and reconnects after 30 s without one), on every
  node (rooms.py publishes it on the bus's per-note channel), and remembered per
  connection so that a disconnect broadcasts its removal everywhere; never stored;
- query-awareness → every current awareness state (local, and other nodes' seen here).

Each connection also holds a hub subscriber for its user (`NoteWatch`): `text`/`put`
events of the note from the sync path are merged into the room, a `revoke` of the note
closes with 4403, a revoked device with 4401, and with Redis the bus subscribes this
node to the user's channel, so changes committed on another node reach the room too.
Roles are live: a `member` event naming the user in the note's project sets the socket's
role at once (a viewer's updates are refused from the next one on), and a move of the
note or a nudge (events may have been missed) re-reads it.
Sends go through the connection's `Outbox`: bounded in bytes, queued document updates
merged into one frame; only a peer over its budget even so (it stopped reading) is closed
with 4408. What a turn of the event loop queued is written straight to the socket when
the turn ends, a broadcast's frame made once for all the room's peers (frames.py); a
paused socket's queue is left to the connection's sender task.
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
from syncd.errors import SyncdError
from syncd.fanout import Subscriber
from syncd.frames import EXTENSION, Direct, Flusher, Outgoing
from syncd.limits import MAX_DOC_BYTES
from syncd.messages import Event
from syncd.outbox import Outbox
from syncd.rooms import EMPTY_UPDATE, Refused, Room
from syncd.services import Services
from syncd.types import WRITE_ROLES, Principal

log = logging.getLogger("syncd.collab")

MAX_FRAME = MAX_DOC_BYTES  # a frame bigger than a whole document cannot be valid
CLOSE_TIMEOUT = 5.0


class _Close(Exception):
    def __init__(self, code: int, reason: str, notice: bool = False) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.notice = notice  # send permission-denied with the reason before closing


class Connection:
    """One collab socket: the peer side of a room, its role, and what waits to be sent."""

    def __init__(self, ws: WebSocket, who: Principal, outbox: Outbox,
                 direct: Direct | None = None, flusher: Flusher | None = None) -> None:
        self.ws = ws
        self.direct = direct  # the socket's transport, where the server offers it
        self.flusher = flusher if direct is not None else None
        self.busy = False  # the sender holds a frame it has not written yet
        self.who = who
        self.role: str | None = None
        self.project_id: UUID | None = None
        self.note_owner = False
        self.outbox = outbox
        self.closing: tuple[int, str] | None = None
        self.notice: bytes | None = None
        self.sending: asyncio.Task[None] | None = None
        self.awareness = yproto.AwarenessClients()

    @property
    def can_write(self) -> bool:
        return self.role in WRITE_ROLES

    @property
    def open(self) -> bool:
        return self.closing is None

    def access(self, row: dict[str, Any] | None) -> None:
        """Take the caller's access from the note's row (_load_note); none closes 4403."""
        if row is None:
            self.close(4404, "the note is gone")
            return
        self.note_owner = row["owner_id"] == self.who.user_id
        self.project_id = row["project_id"]
        self.role = "owner" if self.note_owner else row["role"]
        if self.role is None:
            self.close(4403, "this note is not shared with you")

    def send(self, frame: bytes) -> None:
        self.deliver(Outgoing(frame, update=False))

    def deliver(self, out: Outgoing) -> None:
        """Queue the message; it leaves at the end of this turn of the event loop."""
        if self.closing is not None:
            return
        if not self.outbox.put(out):
            self.close(4408, "too slow")
        elif self.flusher is not None:
            self.flusher.mark(self)
        else:
            self.outbox.wake()

    def flush(self) -> None:
        """Write what is queued straight to the socket, unless it is paused (or the sender
        holds a message it has not written yet): then the sender sends it, in order."""
        if self.closing is not None or self.busy or not self.outbox.items:
            return
        if self.direct is not None and self.direct.ready():
            frames = self.outbox.take()
            self.direct.write(frames)
            self.outbox.tally.direct += len(frames)
        else:
            self.outbox.wake()

    def close(self, code: int, reason: str, notice: bytes | None = None) -> None:
        """Close after `notice` (what was queued is dropped). A sender stuck on a peer
        that does not read is cancelled after CLOSE_TIMEOUT, which ends the socket."""
        if self.closing is not None:
            return
        self.closing, self.notice = (code, reason), notice
        self.outbox.close()
        if self.sending is not None:
            asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self.sending.cancel)

    async def sender(self) -> None:
        self.sending = asyncio.current_task()
        while (frame := await self.outbox.get()) is not None:
            self.busy = True  # a frame taken off the queue and not yet written: none may
            try:  # pass it on the direct path (it waits while the transport is paused)
                await self.ws.send_bytes(frame)
            finally:
                self.busy = False
        code, reason = self.closing or (1000, "")
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                if self.notice is not None:
                    await self.ws.send_bytes(self.notice)
                await self.ws.close(code, reason)


class NoteWatch(Subscriber):
    """A hub subscriber that feeds the note's events into its room instead of a queue, and
    keeps the connection's role up to date."""

    def __init__(self, who: Principal, note_id: UUID, svc: Services) -> None:
        super().__init__(who.user_id, who.device_id, limit=1)
        self.note_id = note_id
        self.svc = svc
        self.room: Room | None = None
        self.conn: Connection | None = None
        self.early: list[Event] = []
        self.rechecking: asyncio.Task[None] | None = None

    def offer(self, events: list[Event]) -> None:
        if not events:  # a nudge from the bus: something may have been missed
            if self.room is not None:
                asyncio.get_running_loop().create_task(self.room.refresh())
                self._recheck()
            return
        for event in events:
            mine = event.entity == "note" and event.id == self.note_id
            if not mine and not (event.entity == "project" and event.kind == "member"):
                continue
            if self.room is None:
                self.early.append(event)
            else:
                self._feed(event)

    def _feed(self, event: Event) -> None:
        assert self.room is not None
        if event.kind == "member":
            self._member(event)
        elif event.kind == "text":
            self.room.on_event(self.user_id, event.seq, event.update)
        elif event.kind == "put":
            self.room.on_event(self.user_id, event.seq, event.body_state)
        elif event.kind == "revoke" and self.conn is not None:
            self.conn.close(4403, "access to this note was revoked")
        elif event.kind == "set" and "project_id" in (event.fields or {}):
            self._recheck()  # moved: the role is the new project's

    def _member(self, event: Event) -> None:
        """A membership change: the user's own in the note's project takes effect now."""
        fields = event.fields or {}
        conn = self.conn
        if conn is None or fields.get("user_id") != str(self.user_id):
            return
        if event.id != conn.project_id or conn.note_owner:
            return
        role = fields.get("role")
        if role is None:
            conn.close(4403, "you were removed from the note's project")
        else:
            conn.role = str(role)

    def _recheck(self) -> None:
        """Read the caller's access again (one read at a time)."""
        if self.conn is None or (self.rechecking is not None and not self.rechecking.done()):
            return
        conn = self.conn

        async def recheck() -> None:
            try:
                conn.access(await _load_note(self.svc, self.note_id, self.user_id))
            except Exception:
                log.exception("note %s: could not re-read a collab peer's role", self.note_id)

        self.rechecking = asyncio.get_running_loop().create_task(recheck())

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
    """The caller's access to the note (its owner, project and the caller's role there)."""

    async def tx(conn: Any) -> dict[str, Any] | None:
        cur = await conn.execute(
            """SELECT n.owner_id, n.project_id, m.role FROM notes n
               LEFT JOIN members m ON m.project_id = n.project_id AND m.user_id = %s
               WHERE n.id = %s""", (user, note_id))
        row: dict[str, Any] | None = await cur.fetchone()
        return row

    return await svc.db.run(tx, read_only=True)


async def _load_state(svc: Services, note_id: UUID) -> bytes | None:
    """The note's stored document: for a room without an open peer (rooms.Rooms.live)."""

    async def tx(conn: Any) -> bytes | None:
        cur = await conn.execute("SELECT body_state FROM notes WHERE id = %s", (note_id,))
        row = await cur.fetchone()
        return bytes(row["body_state"]) if row and row["body_state"] else None

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
    watch = NoteWatch(who, note_id, svc)
    hub.subscribe(watch)  # before reading the row: nothing committed after it is missed
    try:
        row = await _load_note(svc, note_id, who.user_id)
        if row is None:
            await _refuse(ws, 4404, "no such note")
            return
        rooms = svc.rooms
        if rooms is None:
            raise RuntimeError("collab rooms are not started")
        offered = ws.scope.get("extensions", {}).get(EXTENSION)
        direct: Direct | None = offered["direct"] if offered else None
        if direct is not None and rooms.send_buffer:
            direct.send_buffer(rooms.send_buffer)
        conn = Connection(ws, who, Outbox(rooms.peer_bytes, rooms.tally), direct,
                          rooms.flusher)
        conn.access(row)
        if conn.role is None:
            await _refuse(ws, 4403, "this note is not shared with you")
            return
        room = rooms.live(note_id)
        if room is None:
            room = rooms.get(note_id, await _load_state(svc, note_id))
        room.join(conn)  # no await since `live`: the room still has an open peer
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
                notice = yproto.encode_permission_denied(exc.reason) if exc.notice else None
                conn.close(exc.code, exc.reason, notice)
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
    """Handle the peer's messages in order: through the ASGI queue until it is empty, then,
    where the server offers it, each binary message as it arrives (frames.Direct.listen:
    no task to wake per message, and its broadcast leaves in the same turn of the loop)."""
    failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_bytes(data: bytes) -> None:
        if failed.done() or conn.closing is not None:
            return
        conn.outbox.tally.read += 1
        try:
            _frame(room, conn, data)
        except BaseException as e:  # the reader raises it, as if it had read the frame itself
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            failed.set_exception(e)

    listening = False
    try:
        while True:
            if listening:  # only text frames and the disconnect come this way now
                receive: asyncio.Future[Any] = asyncio.ensure_future(conn.ws.receive())
                await asyncio.wait({receive, failed}, return_when=asyncio.FIRST_COMPLETED)
                if failed.done():
                    receive.cancel()
                    failed.result()
                message = receive.result()
            else:
                message = await conn.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                raise _Close(4409, "text frames are not part of the y-websocket protocol")
            _frame(room, conn, data)
            if not listening and conn.direct is not None:
                listening = conn.direct.listen(on_bytes)
    finally:
        if conn.direct is not None:
            conn.direct.listener = None
        if failed.done():
            failed.exception()  # retrieved: it was raised, or the reader was cancelled


def _frame(room: Room, conn: Connection, data: bytes) -> None:
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
                room.apply_from_peer(conn.who, update, conn)
            except Refused as e:
                raise _Close(e.close_code, e.reason, notice=True) from None
        case yproto.Awareness(update):
            try:
                entries = yproto.decode_awareness(update, max_payload=MAX_FRAME)
            except yproto.ProtocolError as e:
                raise _Close(4409, str(e)[:120]) from None
            try:
                room.admit_awareness(conn.awareness.clocks, entries)
            except Refused as e:
                raise _Close(e.close_code, e.reason, notice=True) from None
            conn.awareness.observe(entries)
            room.awareness_from_peer(update, entries)
        case yproto.QueryAwareness():
            entries = room.awareness_entries()
            if entries:
                conn.send(yproto.encode_awareness(yproto.encode_awareness_update(entries)))
        case yproto.Auth():
            pass  # a client has nothing to ask permission for; harmless


routes = [WebSocketRoute("/v1/collab/{note_id}", collab)]
