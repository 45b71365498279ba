"""The sync socket, `/v1/sync/ws?token=…`: resume from a cursor, live events, pushes, pings.

One `Session` per socket runs three tasks:

- the reader: client frames (`hello`, `push`, `ping`), closed with 4408 when the client is
  silent for `idle_timeout`;
- the streamer (started by `hello`): subscribe to the hub first, then `welcome {head}`,
  the backlog from the log, then live events from the subscriber queue. It tracks the last
  seq sent and drops anything at or below it; whenever what is queued is not exactly the
  next seqs (a gap: another node's events late or lost; a nudge from the bus; an overflow)
  it reads the log instead, which holds every committed event. So: no gap, no duplicate;
- the watchdog: re-checks that the device is still live, for a revocation whose cross-node
  message was lost while Redis was down.

Every send has a timeout: a client that stops reading is closed with 4408, so what it can
pin is one frame plus the transport's buffer, and its hub queue is bounded in bytes
(fanout.py): the frame being written counts against the same budget, and a catch-up frame
is at most half of it. On overflow the socket says `resync {cursor}` and carries on from
the log itself.
Limits and their SYNCD_WS_* variables: docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from syncd import log as logs
from syncd import sync
from syncd.api.common import services
from syncd.db import Conn
from syncd.errors import BadRequest, PayloadTooLarge, SyncdError, Unauthorized
from syncd.fanout import QUEUE_BYTES, Batch, Subscriber
from syncd.limits import MAX_BODY_BYTES
from syncd.messages import (
    CLIENT_TYPES,
    Ack,
    ClientMsg,
    Envelope,
    Error,
    Event,
    Events,
    Hello,
    Ping,
    Pong,
    Push,
    Resync,
    SocketMsg,
    Welcome,
    decode_client_json,
    decode_client_msgpack,
    encode,
    schema_error,
    too_deep,
)
from syncd.services import Services
from syncd.types import Principal

log = logging.getLogger("syncd.ws")
SUBPROTOCOL = "msgpack"


def _env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


@dataclass(frozen=True)
class Limits:
    idle_timeout: float = 60.0  # no frame from the client for this long: close 4408
    send_timeout: float = 10.0  # a frame the client does not take in this long: close 4408
    close_timeout: float = 10.0  # how long a close frame may wait for the client to read
    revalidate: float = 30.0  # how often the device is re-checked against the database
    queue_bytes: int = QUEUE_BYTES  # bytes waiting for a socket before it resyncs
    max_frame: int = MAX_BODY_BYTES  # a bigger client frame is refused with `too_large`
    page: int = 500  # events per `events` frame

    @classmethod
    def from_env(cls) -> Limits:
        d = cls()
        return cls(
            idle_timeout=_env("SYNCD_WS_IDLE_TIMEOUT", d.idle_timeout),
            send_timeout=_env("SYNCD_WS_SEND_TIMEOUT", d.send_timeout),
            close_timeout=_env("SYNCD_WS_CLOSE_TIMEOUT", d.close_timeout),
            revalidate=_env("SYNCD_WS_REVALIDATE", d.revalidate),
            queue_bytes=int(_env("SYNCD_WS_QUEUE_BYTES", d.queue_bytes)),
        )


class _Close(Exception):
    """End the session with this close code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Gone(Exception):
    """The client went away: nothing left to send."""


class SessionSubscriber(Subscriber):
    """A hub subscriber that queues only while streaming and tells its session when closed."""

    def __init__(self, who: Principal, limit: int, on_close: Callable[[str], None]) -> None:
        super().__init__(who.user_id, who.device_id, limit)
        self.active = False
        self.on_close = on_close

    def offer(self, events: list[Event]) -> None:
        if self.active:
            super().offer(events)

    def close(self, reason: str) -> None:
        super().close(reason)
        self.on_close(reason)

    def reset(self) -> None:
        """Forget what is queued and start queueing; the caller reads the log next."""
        self.clear()
        self.overflowed = False
        self.active = True


class Session:
    def __init__(self, ws: WebSocket, svc: Services, limits: Limits | None = None) -> None:
        self.ws = ws
        self.svc = svc
        self.limits = limits or Limits()
        self.msgpack = False
        self.sent = 0  # the last seq this socket sent
        self.done: asyncio.Future[tuple[int | None, str]] = (
            asyncio.get_running_loop().create_future())
        self.send_lock = asyncio.Lock()
        self.sending_since: float | None = None  # loop time the current send began
        self.streamer: asyncio.Task[None] | None = None

    def finish(self, code: int | None, reason: str = "") -> None:
        if not self.done.done():
            self.done.set_result((code, reason))

    async def run(self) -> None:
        self.msgpack = SUBPROTOCOL in (self.ws.scope.get("subprotocols") or [])
        # Accept, then authenticate: a browser sees a close code, not an opaque failure.
        await self.ws.accept(subprotocol=SUBPROTOCOL if self.msgpack else None)
        try:
            self.who = await self.svc.auth.authenticate(self.ws.query_params.get("token"))
        except Unauthorized as e:
            await self._close(4401, e.code)
            return
        self.sub = SessionSubscriber(self.who, self.limits.queue_bytes,
                                     lambda reason: self.finish(4401, reason))
        self.svc.hub.subscribe(self.sub)
        tasks = [self._spawn(self._read()), self._spawn(self._watch())]
        try:
            code, reason = await self.done
        finally:
            self.svc.hub.unsubscribe(self.sub)
            if self.streamer is not None:
                tasks.append(self.streamer)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if code is not None:
            await self._close(code, reason)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return asyncio.create_task(self._guard(coro))

    async def _guard(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except _Close as c:
            self.finish(c.code, c.reason)
        except _Gone:
            self.finish(None)
        except Exception:  # deliberate: one broken session must not take the server down
            log.exception("sync socket failed")
            self.finish(1011, "internal error")

    # --- sending ----------------------------------------------------------------------------

    async def send(self, msg: SocketMsg) -> None:
        data = encode(msg, self.msgpack)
        await self.send_frame(_frame(data, self.msgpack), len(data))

    async def send_frame(self, frame: dict[str, Any], size: int) -> None:
        # No timer per send (a fan-out sends to every socket per commit): _watch closes the
        # socket with 4408 when one send has been stuck longer than send_timeout.
        try:
            async with self.send_lock:
                self.sending_since = asyncio.get_running_loop().time()
                self.sub.sending = size  # it waits for the client as much as the queue does
                self.sub.note_peak()
                try:
                    await self.ws.send(frame)  # waits while the transport is over its mark
                finally:
                    self.sending_since = None
                    self.sub.sending = 0
        except (WebSocketDisconnect, OSError, RuntimeError):
            raise _Gone from None

    async def _close(self, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(self.limits.close_timeout):
                await self.ws.close(code, reason.encode()[:120].decode(errors="ignore"))
        except (TimeoutError, WebSocketDisconnect, OSError, RuntimeError):
            pass  # the client is gone or not reading; the server drops the connection

    # --- reading ----------------------------------------------------------------------------

    async def _read(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.limits.idle_timeout):
                    message = await self.ws.receive()
            except TimeoutError:
                raise _Close(4408, "idle: no frame from the client") from None
            if message["type"] == "websocket.disconnect":
                raise _Gone
            raw = message.get("bytes")
            data: bytes = raw if raw is not None else (message.get("text") or "").encode()
            try:
                if len(data) > self.limits.max_frame:
                    raise PayloadTooLarge(f"frame over {self.limits.max_frame} bytes",
                                          {"limit": self.limits.max_frame})
                await self._handle(self._decode(data))
            except Unauthorized as e:
                raise _Close(4401, e.code) from None
            except SyncdError as e:
                await self.send(Error(e.code, e.message, e.details))

    def _decode(self, data: bytes) -> ClientMsg:
        try:
            return self._decode_frame(data)
        except RecursionError:  # nesting past the decoder's depth, here or in the fallback
            raise too_deep() from None

    def _decode_frame(self, data: bytes) -> ClientMsg:
        try:
            msg: ClientMsg = (decode_client_msgpack.decode(data) if self.msgpack
                              else decode_client_json.decode(data))
            return msg
        except msgspec.ValidationError as e:
            try:
                if self.msgpack:
                    kind = msgspec.msgpack.decode(data, type=Envelope).type
                else:
                    kind = msgspec.json.decode(data, type=Envelope).type
            except msgspec.MsgspecError:
                raise _Close(4409, "not a protocol message") from None
            if kind not in CLIENT_TYPES:
                raise _Close(4409, f"unknown message type {kind[:40]!r}") from None
            raise schema_error(e) from None
        except msgspec.DecodeError:
            raise _Close(4409, "not a protocol message") from None

    async def _handle(self, msg: ClientMsg) -> None:
        match msg:
            case Hello(cursor=cursor):
                if cursor < 0:
                    raise BadRequest("cursor must be >= 0", code="invalid_request")
                await self._restart(cursor)
            case Push(ops=ops):
                r = await sync.push(self.svc.db, self.svc.hub, self.who, ops)
                await self.send(Ack(r.acked, r.cursor, r.results))
            case Ping():
                await self.send(Pong())

    async def _watch(self) -> None:
        """A send stuck past send_timeout closes the socket (4408); the device is re-checked
        every `revalidate` seconds."""
        loop = asyncio.get_running_loop()
        tick = min(self.limits.send_timeout / 4, self.limits.revalidate)
        next_check = loop.time() + self.limits.revalidate
        while True:
            await asyncio.sleep(tick)
            since = self.sending_since
            if since is not None and loop.time() - since > self.limits.send_timeout:
                raise _Close(4408, "too slow: the client is not reading")
            if loop.time() >= next_check:
                next_check = loop.time() + self.limits.revalidate
                await self._check_device()

    async def _check_device(self) -> None:
        async def tx(conn: Conn) -> bool:
            cur = await conn.execute(
                "SELECT 1 FROM devices WHERE id = %s AND user_id = %s AND revoked_at IS NULL",
                (self.who.device_id, self.who.user_id))
            return await cur.fetchone() is not None

        if not await self.svc.db.run(tx, read_only=True):
            raise _Close(4401, "device revoked")

    # --- streaming --------------------------------------------------------------------------

    async def _restart(self, cursor: int) -> None:
        """A (new) hello: stop the current stream, if any, and stream from `cursor`."""
        if self.streamer is not None:
            self.streamer.cancel()
            await asyncio.gather(self.streamer, return_exceptions=True)
        self.streamer = self._spawn(self._stream(cursor))

    async def _stream(self, cursor: int) -> None:
        self.sent = cursor
        self.sub.reset()  # queue from now on: anything earlier is in the log we read next
        user = self.who.user_id

        async def head(conn: Conn) -> int:
            return await logs.head(conn, user)

        await self.send(Welcome(await self.svc.db.run(head, read_only=True)))
        await self._catch_up()
        sub = self.sub
        while True:
            batches = [await sub.get()]
            while not sub.empty() and len(batches) < 64:
                batches.append(sub.get_nowait())
            if self.sub.closed:
                return  # on_close has ended the session
            if self.sub.overflowed:
                await self.send(Resync(self.sent))
                self.sub.reset()
                await self._catch_up()
                continue
            fresh = sorted({e.seq: e for b in batches for e in b if e.seq > self.sent}.values(),
                           key=lambda e: e.seq)
            nudged = any(not b for b in batches)
            if nudged:
                await self._check_device()
            if nudged or (fresh and fresh[-1].seq - self.sent != len(fresh)):
                # A nudge, or a gap (another node's events late or lost): the log has every
                # committed event, those in hand included.
                await self._catch_up()
            elif len(batches) == 1 and len(fresh) == len(batches[0]) <= self.limits.page:
                # The common live case: one commit, sent whole. The hub hands every socket
                # of a user the same list, so its frame is encoded once for all of them.
                await self.send_frame(*_shared_frame(batches[0], self.msgpack))
                self.sent = fresh[-1].seq
            elif fresh:
                await self._send_events(fresh)

    async def _catch_up(self) -> None:
        while True:
            page = await sync.pull(self.svc.db, self.who, self.sent, self.limits.page)
            await self._send_events(page.events)
            if not page.has_more:
                return

    async def _send_events(self, events: list[Event]) -> None:
        """In frames of at most `page` events and half the byte budget (a bigger event goes
        alone), so what waits for a slow client stays within the budget."""
        i, most = 0, max(1, self.limits.queue_bytes // 2)
        while i < len(events):
            chunk = events[i:i + self.limits.page]
            data = encode(Events(chunk, chunk[-1].seq), self.msgpack)
            while len(data) > most and len(chunk) > 1:
                chunk = chunk[:len(chunk) // 2]
                data = encode(Events(chunk, chunk[-1].seq), self.msgpack)
            await self.send_frame(_frame(data, self.msgpack), len(data))
            self.sent = chunk[-1].seq
            i += len(chunk)


def _frame(data: bytes, msgpack: bool) -> dict[str, Any]:
    return ({"type": "websocket.send", "bytes": data} if msgpack
            else {"type": "websocket.send", "text": data.decode()})


def _shared_frame(batch: list[Event], msgpack: bool) -> tuple[dict[str, Any], int]:
    """The batch's `events` frame and its size, made once for every socket of the user: the
    hub hands them all the same Batch, which keeps it."""
    cache = batch.frames if isinstance(batch, Batch) else {}
    hit = cache.get(msgpack)
    if hit is None:
        data = encode(Events(batch, batch[-1].seq), msgpack)
        cache[msgpack] = hit = (_frame(data, msgpack), len(data))
    return hit


async def sync_socket(ws: WebSocket) -> None:
    await Session(ws, services(ws), LIMITS).run()


LIMITS = Limits.from_env()
routes = [WebSocketRoute("/v1/sync/ws", sync_socket)]
