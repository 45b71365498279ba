"""The collab peer's outbox: bounded in bytes, queued document updates merged into one
frame, other frames kept in order; over the budget even merged, the peer is refused."""

from __future__ import annotations

import asyncio
from typing import Any

from pycrdt import Doc, Text

from syncd import yproto
from syncd.frames import Outgoing, binary_frame
from syncd.outbox import Outbox, Tally


def msg(data: bytes) -> Outgoing:
    return Outgoing(data, update=False)


def upd(update: bytes) -> Outgoing:
    return Outgoing(update, update=True)


def keystrokes(n: int, piece: str = "ab", at_end: bool = False) -> tuple[list[bytes], str]:
    doc: Doc[Any] = Doc()
    text = doc.get("body", type=Text)
    updates = []
    for i in range(n):
        before = doc.get_state()
        text.insert(len(text) if at_end or i % 2 else 0, piece)
        updates.append(doc.get_update(before))
    return updates, str(text)


def drain(box: Outbox) -> list[bytes]:
    async def main() -> list[bytes]:
        frames = []
        while box.items:
            frame = await box.get()
            assert frame is not None
            frames.append(frame)
        return frames

    return asyncio.run(main())


def text_of(frames: list[bytes]) -> str:
    doc: Doc[Any] = Doc()
    text = doc.get("body", type=Text)
    for frame in frames:
        for msg in yproto.decode_frame(frame):
            if isinstance(msg, yproto.Update):
                doc.apply_update(msg.update)
    return str(text)


def test_a_backlog_of_updates_goes_out_as_one_frame_in_its_place() -> None:
    updates, text = keystrokes(5000)  # far past the 1,024 frames a peer used to be allowed
    first, middle = (yproto.encode_permission_denied(s) for s in ("first", "middle"))
    box = Outbox(budget=1 << 20)
    assert box.put(msg(first))
    assert all(box.put(upd(u)) for u in updates[:2500])
    assert box.put(msg(middle))
    assert all(box.put(upd(u)) for u in updates[2500:])
    frames = drain(box)
    assert len(frames) == 4 and frames[0] == first and frames[2] == middle
    assert text_of(frames) == text
    assert box.size == 0


def test_over_the_budget_runs_merge_in_place_before_the_peer_is_refused() -> None:
    updates, text = keystrokes(3000, "a", at_end=True)  # typing: merged, one item
    tally = Tally()
    raw = sum(map(len, updates))
    box = Outbox(budget=raw * 2 // 3, tally=tally)  # the backlog fits only merged
    assert all(box.put(upd(u)) for u in updates)
    assert box.size <= box.budget and tally.peak <= box.budget and tally.over == 0
    assert tally.queued == box.size
    assert text_of(drain(box)) == text
    assert tally.queued == 0


def test_a_peer_that_stopped_reading_is_refused_past_the_budget() -> None:
    tally = Tally()
    box = Outbox(budget=10_000, tally=tally)
    frame = b"\x01" + b"a" * 999  # awareness-like frames: nothing to merge
    assert all(box.put(msg(frame)) for _ in range(10))
    assert not box.put(msg(frame))
    assert box.size == 10_000 and tally.peak == 10_000 and tally.over == 1
    box.close()
    assert tally.queued == 0 and not box.put(msg(b"x"))
    assert asyncio.run(box.get()) is None


def test_an_empty_outbox_takes_one_frame_past_the_budget() -> None:
    box = Outbox(budget=10)
    assert box.put(msg(b"a document's sync step 2, larger than the budget"))
    assert not box.put(msg(b"more"))


def test_take_frames_what_get_gives_a_lone_message_once_for_all_its_peers() -> None:
    """`take` (the end of a turn of the event loop) gives the messages `get` (the sender
    task) gives, in the same order and runs merged the same way, as WebSocket frames; a
    message queued alone is framed once, however many peers' queues it is in."""
    updates, text = keystrokes(50)
    hello = msg(yproto.encode_permission_denied("hello"))
    lone = upd(updates[0])
    between = msg(yproto.encode_permission_denied("between"))
    boxes = [Outbox(budget=1 << 20) for _ in range(2)]
    for box in boxes:
        assert box.put(hello) and box.put(lone) and box.put(between)
        assert all(box.put(upd(u)) for u in updates[1:])
    taken, got = boxes[0].take(), drain(boxes[1])
    assert taken == [binary_frame(m) for m in got] and len(taken) == 4
    assert taken[0] is hello.wire and taken[1] is lone.wire  # framed once, shared
    assert text_of(got) == text and boxes[0].size == 0 and not boxes[0].items
