"""The in-process fan-out hub: committed events to the sockets that should see them.

Each subscriber owns a bounded queue; publish never blocks and never grows memory: a
subscriber whose queue is full is marked overflowed and resyncs from the log.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Protocol
from uuid import UUID

from syncd.messages import Event

QUEUE_LIMIT = 256


class Subscriber:
    def __init__(self, user_id: UUID, device_id: UUID | None = None, limit: int = QUEUE_LIMIT):
        self.user_id = user_id
        self.device_id = device_id
        self.queue: asyncio.Queue[list[Event]] = asyncio.Queue(maxsize=limit)
        self.overflowed = False
        self.closed: str | None = None  # a reason, when the server ends this subscription

    def offer(self, events: list[Event]) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(events)
        except asyncio.QueueFull:
            self.overflowed = True
            self._wake()

    def close(self, reason: str) -> None:
        self.closed = reason
        self._wake()

    def _wake(self) -> None:
        # Drain so the reader's get() returns and it notices the flag; the log has it all.
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait([])


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
        subs = self.by_user.get(sub.user_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.by_user[sub.user_id]
                if self.watch is not None:
                    self.watch(sub.user_id, False)

    def deliver(self, events_by_user: dict[UUID, list[Event]]) -> None:
        for user, events in events_by_user.items():
            for sub in list(self.by_user.get(user, ())):
                sub.offer(events)

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
