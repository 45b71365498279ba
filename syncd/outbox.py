"""What waits to be sent to one collab peer, bounded in bytes, Yjs updates merged.

Peers that fall behind in a burst are normal: fifty people typing into one note send
each peer fifty updates per keystroke round. Document updates queued back to back form a
run, and the sender takes a whole run as one update frame (`merge.merge_all`): a peer
that lags gets fewer, larger frames, and never a backlog it cannot catch up with. Other
frames (sync step 2, awareness, permission-denied) keep their place in the order.

The queue is bounded in bytes (`SYNCD_COLLAB_PEER_BYTES`). Past the budget the runs are
merged in place first (what ten thousand keystrokes add is far smaller than their
updates); a peer still over it has stopped reading, and `put` answers False: the caller
closes it with 4408. Every change of size is added to a `Tally` the node shares, so the
metrics show what all peers hold, the most one ever held, and how many went over.
"""

from __future__ import annotations

import asyncio
from collections import deque

from syncd.merge import merge_all
from syncd.yproto import encode_update


class Tally:
    """Bytes queued for every collab peer of the node, the most one peer held, how many
    peers went over their budget, how many updates went out merged into another's frame,
    and how many frames went straight to an idle socket, never queued (frames.py)."""

    def __init__(self) -> None:
        self.queued = 0
        self.peak = 0
        self.over = 0
        self.merged = 0
        self.direct = 0


class Outbox:
    def __init__(self, budget: int, tally: Tally | None = None) -> None:
        self.budget = budget
        self.tally = tally or Tally()
        self.items: deque[bytes | list[bytes]] = deque()  # a frame, or a run of updates
        self.size = 0
        self.closed = False
        self._ready = asyncio.Event()

    def put(self, frame: bytes) -> bool:
        """Queue a frame; False when the peer is over its budget (nothing is queued)."""
        if not self._fits(len(frame)):
            return False
        self.items.append(frame)
        self._grow(len(frame))
        return True

    def put_update(self, update: bytes) -> bool:
        """Queue a document update, joining the run at the end of the queue."""
        if not self._fits(len(update)):
            return False
        last = self.items[-1] if self.items else None
        if isinstance(last, list):
            last.append(update)
        else:
            self.items.append([update])
        self._grow(len(update))
        return True

    def close(self) -> None:
        """Drop what waits; `get` answers None from now on."""
        self._grow(-self.size)
        self.items.clear()
        self.closed = True
        self._ready.set()

    async def get(self) -> bytes | None:
        """The next frame to send (a run as one update frame), or None once closed."""
        while not self.items and not self.closed:
            self._ready.clear()
            await self._ready.wait()
        if self.closed:
            return None
        item = self.items.popleft()
        if isinstance(item, bytes):
            self._grow(-len(item))
            return item
        self._grow(-sum(map(len, item)))
        self.tally.merged += len(item) - 1
        return encode_update(merge_all(item))

    def _fits(self, n: int) -> bool:
        # An empty queue takes any one frame: a document's step 2 may exceed a small budget.
        if self.closed:
            return False
        if self.size + n <= self.budget or not self.items:
            return True
        for i, item in enumerate(self.items):
            if isinstance(item, list) and len(item) > 1:
                merged = merge_all(item)
                self._grow(len(merged) - sum(map(len, item)))
                self.tally.merged += len(item) - 1
                self.items[i] = [merged]
        if self.size + n <= self.budget:
            return True
        self.tally.over += 1
        return False

    def _grow(self, n: int) -> None:
        self.size += n
        self.tally.queued += n
        self.tally.peak = max(self.tally.peak, self.size)
        if n > 0:
            self._ready.set()
