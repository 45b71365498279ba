"""Planning a large batch off the event loop.

A batch's planning (plan.Batch: pycrdt applies, text reads, word counts) is pure CPU work
that runs between the awaits of its transaction. On the event loop, a 1000-op push onto a
long note, or one keystroke onto a 1.5 MB note (loading its document, reading its text),
held every other client of the node for tens to hundreds of milliseconds. A large batch
is planned in a worker thread instead; a small one stays inline, since the hop to a
thread costs more than it does.

Only the pure planning goes to the thread: the transaction's connection stays with the
coroutine that awaits it, and nothing else touches the batch's entities meanwhile. The
documents a batch makes there outlive it on the loop's thread (a REST write goes on with
the entities it locked; every one is dropped there), so merge.py creates the documents
entities keep with `allow_multithreading=True`, and subscribes to none of their events.
pycrdt does not release the GIL inside a call, so the loop still waits for the longest
single call (a long text's commit or read), not for the whole batch.

`tally` counts batches by where they were planned and those in a thread right now, read
by /metrics (`syncd_batches_planned{where}`, `syncd_batches_planning_off_loop`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from uuid import UUID

from syncd.merge import Entity
from syncd.messages import Op

T = TypeVar("T")

# A batch is large from this many ops (100 text ops on a short note took 13 ms to plan)...
LARGE_OPS = 50
# ...or from this many bytes of Yjs to integrate or read: its text ops' updates and the
# stored documents they edit (one keystroke onto a 300 kB note took 14 ms, onto 30 kB
# 0.4 ms, where a thread hop took ~0.1-0.5 ms).
LARGE_BYTES = 64 * 1024


@dataclass
class Tally:
    planned: Counter[str] = field(default_factory=Counter)  # "loop", "thread"
    in_flight: int = 0  # batches being planned in a thread now


tally = Tally()


def is_large(ops: Iterable[Op], entities: Mapping[UUID, Entity]) -> bool:
    count = size = 0
    edited: set[UUID] = set()
    for op in ops:
        count += 1
        if op.kind == "text" and op.update is not None:
            size += len(op.update)
            edited.add(op.id)
    size += sum(len(e.body_state or b"") for i in edited if (e := entities.get(i)))
    return count >= LARGE_OPS or size >= LARGE_BYTES


async def plan(fn: Callable[[], T], large: bool) -> T:
    """Run `fn` (pure planning) in a worker thread when the batch is large, else inline."""
    if not large:
        tally.planned["loop"] += 1
        return fn()
    tally.in_flight += 1
    try:
        return await asyncio.to_thread(fn)
    finally:
        tally.in_flight -= 1
        tally.planned["thread"] += 1
