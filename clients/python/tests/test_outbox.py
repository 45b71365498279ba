"""Push results without a network: the outbox's reaction to applied, duplicate,
rejected and `client_seq_gap`, as the server would answer (docs/protocol.md)."""

from __future__ import annotations

from typing import Literal

from conftest import note_of

from syncd_client import SyncClient
from syncd_client.hlc import parse_hlc
from syncd_client.messages import OpResult, PushResponse
from syncd_client.types import Json

Status = Literal["applied", "duplicate", "rejected"]


def answer(
    ops: list[Json], status: Status = "applied", acked: int | None = None, hlc: str | None = None
) -> PushResponse:
    seqs = [int(op["client_seq"]) for op in ops]
    results = [OpResult(client_seq=s, status=status, hlc=hlc) for s in seqs]
    return PushResponse(
        acked=acked if acked is not None else max(seqs), cursor=len(seqs), results=results
    )


def test_ops_are_numbered_and_carry_base(client: SyncClient) -> None:
    client.store.set("cursor", 17)
    a = client.create_note(title="a")
    client.update_note(a, pinned=True)
    client.delete_note(a)
    ops = client.store.pending()
    assert [o["client_seq"] for o in ops] == [1, 2, 3]
    assert [o["kind"] for o in ops] == ["set", "set", "delete"]
    assert all(o["base"] == 17 and o["id"] == a for o in ops)
    assert [o["hlc"] for o in ops] == sorted(o["hlc"] for o in ops)
    assert all(parse_hlc(o["hlc"]).node == client.device_id for o in ops)


def test_applied_ops_leave_the_outbox_and_adopt_canonical_hlc(client: SyncClient) -> None:
    id = client.create_note(title="t")
    ops = client.outbox.next_batch()
    canonical = f"1000000000000.000000.{client.device_id}"
    client.outbox.on_response(ops, answer(ops, hlc=canonical))
    assert client.pending() == 0 and client.acked == 1
    row = client.projection.row("note", id)
    assert row is not None and set(row.clocks.values()) == {canonical}


def test_lost_response_retry_is_duplicate_and_not_applied_twice(client: SyncClient) -> None:
    id = client.create_note(title="once")
    client.set_body(id, "abc")
    first = client.outbox.next_batch()
    # The response to `first` was lost; meanwhile the user types more.
    client.insert_text(id, 3, "d")
    retry = client.outbox.next_batch()
    assert [o["client_seq"] for o in retry] == [1, 2, 3]  # same numbers, never renumbered
    assert retry[:2] == first
    results = [OpResult(1, "duplicate"), OpResult(2, "duplicate"), OpResult(3, "applied")]
    client.outbox.on_response(retry, PushResponse(acked=3, cursor=3, results=results))
    assert client.pending() == 0
    assert note_of(client, id)["body"] == "abcd"


def test_rejected_ops_are_recorded_and_do_not_block(client: SyncClient) -> None:
    id = client.create_note(title="x" * 600)
    client.create_note(title="fine")
    ops = client.outbox.next_batch()
    results = [
        OpResult(1, "rejected", code="validation", message="title too long"),
        OpResult(2, "applied"),
    ]
    client.outbox.on_response(ops, PushResponse(acked=2, cursor=1, results=results))
    assert client.pending() == 0
    [rej] = client.rejections()
    assert (rej.client_seq, rej.id, rej.code, rej.message) == (
        1,
        id,
        "validation",
        "title too long",
    )
    row = client.projection.row("note", id)
    assert row is not None and set(row.clocks.values()) == {""}  # any remote write wins


def test_gap_drops_consumed_ops(client: SyncClient) -> None:
    for i in range(4):
        client.create_note(title=str(i))
    client.outbox.on_gap(expected=3)  # 1 and 2 were consumed by a push we never heard of
    assert [o["client_seq"] for o in client.store.pending()] == [3, 4]
    assert client.acked == 2


def test_gap_below_head_renumbers_from_expected(client: SyncClient) -> None:
    client.store.set("next_seq", 10)  # e.g. a store restored from an older copy
    client.create_note(title="a")
    client.create_note(title="b")
    client.outbox.on_gap(expected=4)
    assert [(o["client_seq"], o["fields"]["title"]) for o in client.store.pending()] == [
        (4, "a"),
        (5, "b"),
    ]
    client.create_note(title="c")
    assert client.store.pending()[-1]["client_seq"] == 6


def test_push_batches_are_at_most_1000(client: SyncClient) -> None:
    id = client.create_note(title="n")
    for i in range(1200):
        client.update_note(id, title=str(i))
    assert len(client.outbox.next_batch()) == 1000
