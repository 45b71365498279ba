"""The in-process fan-out hub: committed events to the sockets that should see them.

Each subscriber owns a queue bounded in bytes; publish never blocks and never grows memory:
a subscriber whose queue would pass its byte budget is marked overflowed and resyncs from
the log. A commit is wrapped once per user in a `Batch`, which sizes it once (its
MessagePack encoding) and keeps the frames made of it, however many sockets queue it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol
from uuid import UUID

import msgspec

from syncd.messages import Event

QUEUE_BYTES = 1024 * 1024
BATCH_OVERHEAD = 64  # what a queued batch costs beyond its events (an empty one: a nudge)
_sizer = msgspec.msgpack.Encoder()


class Batch(list[Event]):
    """One commit's events for one user, as every subscriber of that user queues it."""

    def __init__(self, events: Iterable[Event] = ()) -> None:
        super().__init__(events)
        self._size: int | None = None
        # msgpack? → its `events` frame and the frame's size (ws_sync._shared_frame)
        self.frames: dict[bool, tuple[dict[str, Any], int]] = {}

    @property
    def size(self) -> int:
        if self._size is None:
            self._size = BATCH_OVERHEAD + (len(_sizer.encode(list(self))) if self else 0)
        return self._size


def batch_bytes(events: list[Event]) -> int:
    return events.size if isinstance(events, Batch) else Batch(events).size


class Subscriber:
    """A bounded queue of batches: `limit` bytes (the sender's `sending` counted too)."""

    def __init__(self, user_id: UUID, device_id: UUID | None = None, limit: int = QUEUE_BYTES):
        self.user_id = user_id
        self.device_id = device_id
        self.limit = limit
        self._queue: asyncio.Queue[tuple[list[Event], int]] = asyncio.Queue()
        self.queued = 0  # bytes of the batches in the queue
        self.sending = 0  # bytes of the frame its reader is writing (set by the reader)
        self.peak = 0  # the most `queued + sending` has been
        self.overflowed = False
        self.closed: str | None = None  # a reason, when the server ends this subscription

    def offer(self, events: list[Event]) -> None:
        if self.overflowed:
            return
        size = batch_bytes(events)
        if self.queued + self.sending + size > self.limit:
            self.overflowed = True
            self._wake()
            return
        self.queued += size
        self.note_peak()
        self._queue.put_nowait((events, size))

    def note_peak(self) -> None:
        self.peak = max(self.peak, self.queued + self.sending)

    async def get(self) -> list[Event]:
        events, size = await self._queue.get()
        self.queued -= size
        return events

    def get_nowait(self) -> list[Event]:
        events, size = self._queue.get_nowait()
        self.queued -= size
        return events

    def empty(self) -> bool:
        return self._queue.empty()

    def clear(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()
        self.queued = 0

    def close(self, reason: str) -> None:
        self.closed = reason
        self._wake()

    def _wake(self) -> None:
        # Drain so the reader's get() returns and it notices the flag; the log has it all.
        self.clear()
        self._queue.put_nowait(([], 0))


class DocChannels(Protocol):
    """Per-note ephemeral messages between nodes (the bus; absent on a single node)."""

    def publish_doc(self, note_id: UUID, data: bytes) -> None: ...

    def subscribe_doc(self, note_id: UUID, handler: Callable[[bytes | None], None]) -> None: ...

    def unsubscribe_doc(self, note_id: UUID,
                        handler: Callable[[bytes | None], None]) -> None: ...


class Hub:
    """Local subscribers by user; `forward` hands local commits to the bus for other nodes.

    The bus (bus.py) also sets `watch` (called with a user and True on their first local
    subscriber, False after the last), `forward_close` (a device closed on this node) and
    `docs` (per-note channels for collab awareness).
    """

    def __init__(self) -> None:
        self.by_user: dict[UUID, set[Subscriber]] = defaultdict(set)
        self.forward: Callable[[dict[UUID, list[Event]]], Awaitable[None]] | None = None
        self.published = 0  # events handed to publish (the syncd_events_fanned_out metric)
        self.peak = 0  # the most bytes one subscriber has held (of those gone too)
        self.watch: Callable[[UUID, bool], None] | None = None
        self.forward_close: Callable[[UUID, str], None] | None = None
        self.docs: DocChannels | None = None
        # Called with each device closed here or on another node (auth forgets it is live).
        self.device_closed: list[Callable[[UUID], None]] = []

    def subscribe(self, sub: Subscriber) -> None:
        first = sub.user_id not in self.by_user
        self.by_user[sub.user_id].add(sub)
        if first and self.watch is not None:
            self.watch(sub.user_id, True)

    def unsubscribe(self, sub: Subscriber) -> None:
        self.peak = max(self.peak, sub.peak)
        subs = self.by_user.get(sub.user_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.by_user[sub.user_id]
                if self.watch is not None:
                    self.watch(sub.user_id, False)

    def deliver(self, events_by_user: dict[UUID, list[Event]]) -> None:
        for user, events in events_by_user.items():
            subs = self.by_user.get(user)
            if subs:
                batch = Batch(events)
                for sub in list(subs):
                    sub.offer(batch)

    async def publish(self, events_by_user: dict[UUID, list[Event]]) -> None:
        """Called after commit: deliver locally, then to other nodes."""
        if not events_by_user:
            return
        self.published += sum(map(len, events_by_user.values()))
        self.deliver(events_by_user)
        if self.forward is not None:
            await self.forward(events_by_user)

    def nudge(self, user: UUID | None = None) -> None:
        """An empty batch: "something may have been missed, catch up from the log"."""
        for uid in [user] if user is not None else list(self.by_user):
            for sub in list(self.by_user.get(uid, ())):
                sub.offer([])

    def close_device(self, device_id: UUID, reason: str) -> None:
        """Close a device's subscriptions here and, through the bus, on every node."""
        self.close_local_device(device_id, reason)
        if self.forward_close is not None:
            self.forward_close(device_id, reason)

    def close_local_device(self, device_id: UUID, reason: str) -> None:
        for listener in self.device_closed:
            listener(device_id)
        for subs in list(self.by_user.values()):
            for sub in list(subs):
                if sub.device_id == device_id:
                    sub.close(reason)

    def subscriber_count(self) -> int:
        return sum(len(s) for s in self.by_user.values())

    def subscribers(self) -> Iterable[Subscriber]:
        for subs in self.by_user.values():
            yield from subs

    def waiting_bytes(self) -> tuple[int, int]:
        """(bytes waiting for this node's subscribers now, the most one has held at once),
        the syncd_ws_waiting_bytes and syncd_ws_waiting_bytes_peak metrics."""
        now = peak = 0
        for sub in self.subscribers():
            now += sub.queued + sub.sending
            peak = max(peak, sub.peak)
        self.peak = max(self.peak, peak)
        return now, self.peak
