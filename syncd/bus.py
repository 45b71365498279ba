"""The Redis bridge between nodes: what one node commits reaches sockets on every node.

PostgreSQL stays the source of truth; Redis only says "this happened" sooner than a poll
would. Every message carries the publishing node's id, and a node skips its own.

- Publish: the hub's `forward` puts each user's committed events (MessagePack) on a
  bounded outbox, and one task publishes them, in order, to `syncd:u:<user>`. A publish
  that fails or does not fit never fails the push: the user is remembered, and once Redis
  answers again an empty batch (a nudge) goes to their channel, so other nodes' sessions
  catch up from the log.
- Subscribe: only to users with sockets on this node (the hub's `watch`), plus
  `syncd:device-closed` (revocations cross nodes) and `syncd:nudge` (everyone catches up).
  Redis confirms each subscription with a message; on that confirmation the user's local
  sessions are nudged, since anything published before it took effect is only in the log.
- Outage: the listener reconnects with backoff and resubscribes, and the confirmations
  nudge every local session, so nothing committed meanwhile is missed.
- Documents (`publish_doc`/`subscribe_doc`, reached through `hub.docs`): opaque ephemeral
  bytes per note on `syncd:doc:<note>` (collab awareness), subscribed while a handler is
  registered. Best effort: dropped while Redis is down, when bigger than `DOC_MAX_BYTES`,
  or when the outbox already holds `DOC_OUTBOX_LIMIT` messages, and never remembered for
  a nudge. A handler is called with None on each (re)subscription: it missed what was
  published before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any
from uuid import UUID

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from syncd.fanout import Hub
from syncd.messages import Event

log = logging.getLogger("syncd.bus")

USER_PREFIX = b"syncd:u:"
CLOSED_CHANNEL = b"syncd:device-closed"
NUDGE_CHANNEL = b"syncd:nudge"
DOC_PREFIX = b"syncd:doc:"
OUTBOX_LIMIT = 10_000  # messages waiting for Redis; past it they become nudges
MISSED_LIMIT = 10_000  # users remembered for a nudge; past it everyone is nudged
POLL = 0.1  # seconds between checks for subscription changes
MAX_BACKOFF = 5.0
DOC_OUTBOX_LIMIT = 256  # a doc message finding this many queued is dropped (ephemeral)
DOC_MAX_BYTES = 64 * 1024  # a bigger doc message stays on its node

DocHandler = Callable[[bytes | None], None]


class UserEvents(msgspec.Struct):
    node: str
    user: UUID
    events: list[Event]  # empty: a nudge


class DeviceClosed(msgspec.Struct):
    node: str
    device: UUID
    reason: str


class Nudge(msgspec.Struct):
    node: str


class DocMessage(msgspec.Struct):
    node: str
    data: bytes


_encoder = msgspec.msgpack.Encoder()
_decode_events = msgspec.msgpack.Decoder(UserEvents)
_decode_closed = msgspec.msgpack.Decoder(DeviceClosed)
_decode_nudge = msgspec.msgpack.Decoder(Nudge)
_decode_doc = msgspec.msgpack.Decoder(DocMessage)


class Bus:
    def __init__(self, url: str, hub: Hub, node: str | None = None) -> None:
        self.url = url
        self.hub = hub
        self.node = node or uuid.uuid4().hex
        self.outbox: asyncio.Queue[tuple[bytes, bytes, UUID | None]] = asyncio.Queue(
            OUTBOX_LIMIT)
        self.missed: set[UUID] = set()
        self.missed_all = False
        self.connected = False
        self.changed = asyncio.Event()
        self.docs: dict[UUID, list[DocHandler]] = {}
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Bus:
        self.pub = aioredis.from_url(self.url, socket_connect_timeout=2, socket_timeout=2)
        self.hub.forward = self.forward
        self.hub.watch = self.watch
        self.hub.forward_close = self.forward_close
        self.hub.docs = self
        self.tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._publish())]
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.hub.forward = self.hub.watch = self.hub.forward_close = self.hub.docs = None
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.pub.aclose()

    # --- hub hooks (never block, never raise) -----------------------------------------------

    async def forward(self, events_by_user: dict[UUID, list[Event]]) -> None:
        for user, events in events_by_user.items():
            self._queue(USER_PREFIX + str(user).encode(),
                        _encoder.encode(UserEvents(self.node, user, events)), user)

    def forward_close(self, device: UUID, reason: str) -> None:
        self._queue(CLOSED_CHANNEL, _encoder.encode(DeviceClosed(self.node, device, reason)),
                    None)

    def watch(self, user: UUID, present: bool) -> None:
        self.changed.set()

    # --- per-note channels (ephemeral, best effort) ------------------------------------------

    def publish_doc(self, note_id: UUID, data: bytes) -> None:
        """Send `data` to the note's handlers on other nodes; dropped, never queued up, when
        Redis is down, the message is too big or the outbox is busy."""
        if (not self.connected or len(data) > DOC_MAX_BYTES
                or self.outbox.qsize() >= DOC_OUTBOX_LIMIT):
            return
        with contextlib.suppress(asyncio.QueueFull):
            self.outbox.put_nowait((DOC_PREFIX + str(note_id).encode(),
                                    _encoder.encode(DocMessage(self.node, data)), None))

    def subscribe_doc(self, note_id: UUID, handler: DocHandler) -> None:
        self.docs.setdefault(note_id, []).append(handler)
        self.changed.set()

    def unsubscribe_doc(self, note_id: UUID, handler: DocHandler) -> None:
        handlers = self.docs.get(note_id, [])
        if handler in handlers:
            handlers.remove(handler)
        if not handlers:
            self.docs.pop(note_id, None)
            self.changed.set()

    def _deliver_doc(self, channel: bytes, data: bytes | None) -> None:
        for handler in list(self.docs.get(UUID(channel[len(DOC_PREFIX):].decode()), ())):
            try:
                handler(data)
            except Exception:  # a handler's bug must not stop the listener
                log.exception("doc handler failed on %r", channel)

    def _queue(self, channel: bytes, data: bytes, user: UUID | None) -> None:
        try:
            self.outbox.put_nowait((channel, data, user))
        except asyncio.QueueFull:
            self._miss(user)

    def _miss(self, user: UUID | None) -> None:
        # A lost revocation is recovered by nudging everyone: sessions re-check their device.
        if user is None or len(self.missed) >= MISSED_LIMIT:
            self.missed_all = True
        else:
            self.missed.add(user)

    def _flush_missed(self) -> None:
        users, self.missed = self.missed, set()
        everyone, self.missed_all = self.missed_all, False
        if everyone:
            self._queue(NUDGE_CHANNEL, _encoder.encode(Nudge(self.node)), None)
            return
        for user in users:
            self._queue(USER_PREFIX + str(user).encode(),
                        _encoder.encode(UserEvents(self.node, user, [])), user)

    # --- publishing -------------------------------------------------------------------------

    async def _publish(self) -> None:
        while True:
            channel, data, user = await self.outbox.get()
            ephemeral = channel.startswith(DOC_PREFIX)  # lost is lost: nobody is nudged
            if not self.connected:
                if not ephemeral:
                    self._miss(user)
                continue
            try:
                await self.pub.publish(channel, data)
            except (RedisError, OSError) as e:
                if not ephemeral:
                    log.warning("redis publish failed (the log has it): %s", e)
                    self._miss(user)
                continue
            if self.missed or self.missed_all:
                self._flush_missed()

    # --- subscribing ------------------------------------------------------------------------

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            client = aioredis.from_url(self.url, socket_connect_timeout=2,
                                       health_check_interval=5)
            pubsub = client.pubsub()
            subscribed: set[bytes] = set()
            try:
                await pubsub.subscribe(CLOSED_CHANNEL, NUDGE_CHANNEL)
                self.changed.set()
                while True:
                    if self.changed.is_set():
                        self.changed.clear()
                        await self._resubscribe(pubsub, subscribed)
                    msg = await pubsub.get_message(timeout=POLL)
                    if msg is not None:
                        backoff = 0.1
                        self._on_message(msg)
            except (RedisError, OSError) as e:
                if self.connected:
                    log.warning("redis bus lost, reconnecting: %s", e)
                self.connected = False
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
                    await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _resubscribe(self, pubsub: Any, subscribed: set[bytes]) -> None:
        want = ({USER_PREFIX + str(u).encode() for u in self.hub.by_user}
                | {DOC_PREFIX + str(n).encode() for n in self.docs})
        add, drop = want - subscribed, subscribed - want
        if add:
            await pubsub.subscribe(*add)
            subscribed |= add
        if drop:
            await pubsub.unsubscribe(*drop)
            subscribed -= drop

    def _on_message(self, msg: dict[str, Any]) -> None:
        kind, channel = msg["type"], bytes(msg["channel"])
        if kind == "subscribe":
            if channel == CLOSED_CHANNEL:  # (re)connected
                self.connected = True
                self._flush_missed()
            elif channel.startswith(USER_PREFIX):
                self.hub.nudge(UUID(channel[len(USER_PREFIX):].decode()))
            elif channel.startswith(DOC_PREFIX):
                self._deliver_doc(channel, None)
            return
        if kind != "message":
            return
        try:
            if channel == CLOSED_CHANNEL:
                closed = _decode_closed.decode(msg["data"])
                if closed.node != self.node:
                    self.hub.close_local_device(closed.device, closed.reason)
            elif channel == NUDGE_CHANNEL:
                if _decode_nudge.decode(msg["data"]).node != self.node:
                    self.hub.nudge()
            elif channel.startswith(DOC_PREFIX):
                doc = _decode_doc.decode(msg["data"])
                if doc.node != self.node:
                    self._deliver_doc(channel, doc.data)
            else:
                batch = _decode_events.decode(msg["data"])
                if batch.node != self.node:
                    self.hub.deliver({batch.user: batch.events})
        except (msgspec.MsgspecError, ValueError) as e:
            log.warning("ignoring a malformed bus message on %r: %s", channel, e)


def connect_bus(url: str | None, hub: Hub) -> AbstractAsyncContextManager[Any]:
    """The bus when REDIS_URL is set; otherwise fan-out stays in process."""
    return Bus(url, hub) if url else contextlib.nullcontext()
