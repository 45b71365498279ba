"""The SDK against a real `syncd serve` and PostgreSQL (the session `server` fixture)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from conftest import note_of
from e2e_util import PASSWORD, device, local_notes, log_counts, new_email, snapshot_notes

from syncd_client import SyncClient

if TYPE_CHECKING:
    from tests.fix_server import ServerProcess

Make = Callable[..., SyncClient]


@pytest.fixture
def mk(tmp_path: Path, server: ServerProcess) -> Iterator[Make]:
    """`mk(name, email, register=False)`: a device with its store at tmp_path/name.db;
    every client made is closed at teardown, whatever the test did."""
    made: list[SyncClient] = []

    def make(name: str, email: str, register: bool = False) -> SyncClient:
        c = device(tmp_path / f"{name}.db", server.base_url, email, name, register)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def pair(mk: Make) -> tuple[SyncClient, SyncClient]:
    """Two devices of one new user; the second bootstrapped from the snapshot."""
    email = new_email()
    a = mk("a", email, register=True)
    b = mk("b", email)
    b.bootstrap()
    return a, b


def test_offline_edits_sync_to_a_bootstrapped_device(
    mk: Make, db: psycopg.Connection[Any]
) -> None:
    email = new_email()
    a = mk("a", email, register=True)
    assert a.user_id and a.device_id
    p = a.create_project(title="Novel", word_goal=10)
    n1 = a.create_note(title="Ch. 1", tags=["draft"], project_id=p, body="It was a dark night.")
    n2 = a.create_note(title="Groceries", pinned=True, body="milk")
    a.set_body(n1, "It was a dark and stormy night.")
    assert a.pending() == 6
    result = a.sync()
    assert result.pushed == 6 and a.pending() == 0 and a.acked == 6
    assert a.cursor > 0
    assert log_counts(db, a.device_id) == {s: 1 for s in range(1, 7)}

    b = mk("b", email)
    b.bootstrap()
    assert local_notes(b) == local_notes(a) == snapshot_notes(b)
    assert note_of(b, n1)["body"] == "It was a dark and stormy night."
    assert [n["id"] for n in b.notes(project_id=p)] == [n1]
    assert [n["id"] for n in b.notes(pinned=True)] == [n2]
    assert [n["id"] for n in b.notes(query="stormy")] == [n1]
    assert b.projects()[0]["title"] == "Novel"
    assert b.cursor == a.cursor

    # Edits converge both ways.
    b.update_note(n2, title="Shopping", tags=["home"])
    a.update_note(n1, favorite=True)
    b.sync()
    a.sync()
    b.sync()
    assert local_notes(a) == local_notes(b) == snapshot_notes(a)
    assert note_of(a, n2)["title"] == "Shopping"
    assert note_of(b, n1)["favorite"] is True


def test_concurrent_field_writes_take_the_greatest_clock(
    pair: tuple[SyncClient, SyncClient],
) -> None:
    a, b = pair
    n = a.create_note(title="t")
    a.sync()
    b.sync()
    a.update_note(n, title="from a")
    time.sleep(0.01)
    b.update_note(n, title="from b")  # later clock: wins everywhere
    a.sync()
    b.sync()
    a.sync()
    assert note_of(a, n)["title"] == note_of(b, n)["title"] == "from b"
    assert snapshot_notes(a)[n]["title"] == "from b"


def test_set_body_merges_with_a_concurrent_edit(pair: tuple[SyncClient, SyncClient]) -> None:
    a, b = pair
    n = a.create_note(title="t", body="The quick fox jumps.")
    a.sync()
    b.sync()
    a.set_body(n, "The quick brown fox jumps.")
    b.insert_text(n, len("The quick fox jumps"), " over the dog")
    a.sync()
    b.sync()
    a.sync()
    want = "The quick brown fox jumps over the dog."
    assert note_of(a, n)["body"] == note_of(b, n)["body"] == want
    assert snapshot_notes(a)[n]["body"] == want
    b.delete_text(n, 0, 4)
    b.sync()
    a.sync()
    assert note_of(a, n)["body"] == want[4:]


def test_delete_and_restore(pair: tuple[SyncClient, SyncClient]) -> None:
    a, b = pair
    n = a.create_note(title="doomed")
    a.sync()
    b.sync()
    b.delete_note(n)
    b.sync()
    a.sync()
    assert a.notes() == [] and note_of(a, n)["deleted"] is True
    assert snapshot_notes(a)[n]["deleted"] is True
    a.restore_note(n)
    a.sync()
    b.sync()
    assert [x["id"] for x in b.notes()] == [n]
    assert snapshot_notes(b)[n]["deleted"] is False


def test_a_rejected_op_is_dropped_with_its_reason(pair: tuple[SyncClient, SyncClient]) -> None:
    a, _b = pair
    ok = a.create_note(title="fine")
    bad = a.create_note(title="x" * 501)  # over the 500-character limit
    after = a.create_note(title="after")
    a.sync()
    assert a.pending() == 0
    rej = a.rejections()
    assert [(r.id, r.code) for r in rej] == [(bad, "validation")]
    assert rej[0].message
    snap = snapshot_notes(a)
    assert ok in snap and after in snap and bad not in snap
    # A text op on a note the server never accepted: rejected `not_found`, queue not blocked.
    a.set_body(bad, "orphan")
    a.update_note(ok, title="still flowing")
    a.sync()
    assert [r.code for r in a.rejections()] == ["validation", "not_found"]
    assert snapshot_notes(a)[ok]["title"] == "still flowing"


def test_a_push_whose_response_was_lost_is_a_duplicate(
    pair: tuple[SyncClient, SyncClient], db: psycopg.Connection[Any]
) -> None:
    a, b = pair
    n = a.create_note(title="once", body="only once")
    a.insert_text(n, 0, ">> ")
    ops = a.outbox.next_batch()
    assert len(ops) == 3
    a.api.push(ops)  # committed by the server; the response never reaches the store
    assert a.pending() == 3
    a.update_note(n, pinned=True)
    ops2 = a.outbox.next_batch()
    resp = a.api.push(ops2)
    assert [r.status for r in resp.results] == ["duplicate"] * 3 + ["applied"]
    a.outbox.on_response(ops2, resp)
    assert a.pending() == 0
    a.sync()
    assert a.device_id is not None
    assert log_counts(db, a.device_id) == {1: 1, 2: 1, 3: 1, 4: 1}
    b.sync()
    assert note_of(b, n)["body"] == ">> only once" == note_of(a, n)["body"]
    assert local_notes(a) == local_notes(b) == snapshot_notes(b)


def test_a_lost_response_then_plain_sync(
    pair: tuple[SyncClient, SyncClient], db: psycopg.Connection[Any]
) -> None:
    a, _b = pair
    n = a.create_note(title="t", body="abc")
    a.api.push(a.outbox.next_batch())  # response dropped
    a.sync()  # retries the same client_seqs: duplicates, dropped from the outbox
    assert a.pending() == 0 and a.acked == 2
    assert a.device_id is not None
    assert log_counts(db, a.device_id) == {1: 1, 2: 1}
    assert snapshot_notes(a)[n]["body"] == "abc"


def test_removing_a_member_revokes_locally(mk: Make) -> None:
    owner_email, guest_email = new_email(), new_email()
    owner = mk("o", owner_email, register=True)
    guest = mk("g", guest_email, register=True)
    guest.bootstrap()
    p = owner.create_project(title="Shared")
    n = owner.create_note(title="shared note", project_id=p, body="hello")
    mine = owner.create_note(title="private")
    owner.sync()
    r = owner.api.http.post(f"/v1/projects/{p}/members", json={"email": guest_email,
                                                                "role": "editor"})
    assert r.status_code == 201, r.text
    guest.sync()
    assert note_of(guest, n)["body"] == "hello" and guest.note(mine) is None
    project = guest.project(p)
    assert project is not None and project["title"] == "Shared"
    guest.set_body(n, "hello world")
    guest.sync()
    owner.sync()
    assert note_of(owner, n)["body"] == "hello world"

    r = owner.api.http.delete(f"/v1/projects/{p}/members/{guest.user_id}")
    assert r.status_code in (200, 204), r.text
    guest.sync()
    assert guest.note(n) is None and guest.project(p) is None
    assert guest.notes(include_deleted=True) == []


def test_the_store_survives_reopening(
    tmp_path: Path, server: ServerProcess, request: pytest.FixtureRequest
) -> None:
    email = new_email()
    path = tmp_path / "a.db"
    a = device(path, server.base_url, email, "laptop", register=True)
    request.addfinalizer(a.close)
    n = a.create_note(title="offline", body="draft")
    a.sync()
    a.update_note(n, title="queued")
    a.insert_text(n, 5, " two")
    device_id, cursor, before = a.device_id, a.cursor, local_notes(a)
    a.close()

    a = SyncClient.open(path)  # the server URL and tokens come from the store
    request.addfinalizer(a.close)
    assert (a.device_id, a.cursor, a.pending()) == (device_id, cursor, 2)
    assert local_notes(a) == before
    a.insert_text(n, 0, "my ")
    a.sync()
    assert a.pending() == 0 and a.acked == 5
    assert snapshot_notes(a)[n] == local_notes(a)[n]
    assert local_notes(a)[n]["body"] == "my draft two"

    b = SyncClient.open(tmp_path / "b.db", server.base_url)
    request.addfinalizer(b.close)
    b.login(email, PASSWORD, "phone", "test")
    b.bootstrap()
    assert local_notes(b)[n]["body"] == "my draft two"


def test_a_write_that_keeps_the_value_still_moves_the_clock(mk: Make) -> None:
    """Found by test_convergence: c sees `pinned=False` (already its value) with a newer
    clock, then an older `pinned=True`; the older write must not win on c."""
    email = new_email()
    a, b, c = mk("a", email, register=True), mk("b", email), mk("c", email)
    n = a.create_note(title="t")
    a.sync()
    b.sync()
    c.bootstrap()  # the snapshot fills `pinned: False` without a clock
    b.update_note(n, pinned=True)
    time.sleep(0.01)
    a.update_note(n, pinned=False)
    a.sync()
    c.sync()
    b.sync()
    c.sync()
    assert [note_of(x, n)["pinned"] for x in (a, b, c)] == [False] * 3
