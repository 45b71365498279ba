"""What waits to be sent to one collab peer, bounded in bytes, Yjs updates merged.

Peers that fall behind in a burst are normal: fifty people typing into one note send
each peer fifty updates per keystroke round. Document updates queued back to back form a
run, taken as one update frame (`merge.merge_all`): a peer that lags gets fewer, larger
frames, and never a backlog it cannot catch up with. Other messages (sync step 2,
awareness, permission-denied) keep their place in the order. The queue is emptied at the
end of each turn of the event loop straight onto the socket (`take`, frames.py), or, for
a peer whose socket is paused, by its sender task (`get`).

The queue is bounded in bytes (`SYNCD_COLLAB_PEER_BYTES`). Past the budget the runs are
merged in place first (what ten thousand keystrokes add is far smaller than their
updates); a peer still over it has stopped reading, and `put` answers False: the caller
closes it with 4408. Every change of size is added to a `Tally` the node shares, so the
metrics show what all peers hold, the most one ever held, and how many went over.
"""

from __future__ import annotations

import asyncio
from collections import deque

from syncd.frames import Outgoing
from syncd.merge import merge_all


class Tally:
    """Bytes queued for every collab peer of the node, the most one peer held, how many
    peers went over their budget, how many updates went out merged into another's frame,
    how many frames were written straight to a socket at the end of a turn of the
    event loop (frames.py), not by a peer's sender task, and how many messages were
    handled as they arrived (frames.Direct.listen), not queued for a reader task."""

    def __init__(self) -> None:
        self.queued = 0
        self.peak = 0
        self.over = 0
        self.merged = 0
        self.direct = 0
        self.read = 0


class Outbox:
    def __init__(self, budget: int, tally: Tally | None = None) -> None:
        self.budget = budget
        self.tally = tally or Tally()
        self.items: deque[Outgoing | list[Outgoing]] = deque()  # a message, or a run of updates
        self.size = 0
        self.closed = False
        self._ready = asyncio.Event()

    def put(self, out: Outgoing) -> bool:
        """Queue a message (an update joins the run at the end of the queue); False when
        the peer is over its budget (nothing is queued). The caller has it sent: `take`
        now, or `wake` the sender."""
        n = len(out.data)
        if not self._fits(n):
            return False
        if out.update:
            last = self.items[-1] if self.items else None
            if isinstance(last, list):
                last.append(out)
            else:
                self.items.append([out])
        else:
            self.items.append(out)
        self._grow(n)
        return True

    def wake(self) -> None:
        """Let `get` answer what is queued."""
        self._ready.set()

    def close(self) -> None:
        """Drop what waits; `get` answers None from now on."""
        self._grow(-self.size)
        self.items.clear()
        self.closed = True
        self._ready.set()

    async def get(self) -> bytes | None:
        """The next message to send (a run as one update message), or None once closed."""
        while not self.items and not self.closed:
            self._ready.clear()
            await self._ready.wait()
        if self.closed:
            return None
        return self._pop().message

    def take(self) -> list[bytes]:
        """Everything queued, as WebSocket frames: a lone message's made once for all the
        peers it went to, a run's merged."""
        frames = []
        while self.items:
            frames.append(self._pop().wire)
        return frames

    def _pop(self) -> Outgoing:
        """The next item as one message: a run of updates merged into one."""
        item = self.items.popleft()
        if isinstance(item, Outgoing):
            self._grow(-len(item.data))
            return item
        self._grow(-sum(len(o.data) for o in item))
        if len(item) == 1:
            return item[0]
        self.tally.merged += len(item) - 1
        return Outgoing(merge_all([o.data for o in item]), update=True)

    def _fits(self, n: int) -> bool:
        # An empty queue takes any one message: a document's step 2 may exceed a small budget.
        if self.closed:
            return False
        if self.size + n <= self.budget or not self.items:
            return True
        for i, item in enumerate(self.items):
            if isinstance(item, list) and len(item) > 1:
                merged = merge_all([o.data for o in item])
                self._grow(len(merged) - sum(len(o.data) for o in item))
                self.tally.merged += len(item) - 1
                self.items[i] = [Outgoing(merged, update=True)]
        if self.size + n <= self.budget:
            return True
        self.tally.over += 1
        return False

    def _grow(self, n: int) -> None:
        self.size += n
        self.tally.queued += n
        self.tally.peak = max(self.tally.peak, self.size)
