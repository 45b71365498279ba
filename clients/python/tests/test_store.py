"""The SQLite store: WAL mode, outbox numbering, and that everything survives a reopen."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from syncd_client.store import Row, Store


def op(n: int) -> dict[str, object]:
    return {
        "hlc": f"{n:013d}.000000.d",
        "entity": "note",
        "id": f"id{n}",
        "kind": "set",
        "fields": {"title": str(n)},
        "base": 0,
    }


def test_wal_mode(store_path: Path) -> None:
    store = Store(store_path)
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_outbox_numbers_from_one_and_keeps_numbers(store_path: Path) -> None:
    store = Store(store_path)
    assert [store.enqueue(op(i)) for i in range(3)] == [1, 2, 3]
    store.drop_ops([1])
    assert [o["client_seq"] for o in store.pending()] == [2, 3]
    assert store.enqueue(op(9)) == 4  # numbers are never reused
    assert store.pending(2)[0] == {**op(1), "client_seq": 2}
    store.close()


def test_renumber_keeps_order(store_path: Path) -> None:
    store = Store(store_path)
    for i in range(5):
        store.enqueue(op(i))
    store.drop_ops_below(3)
    store.renumber_from(1)
    assert [(o["client_seq"], o["id"]) for o in store.pending()] == [
        (1, "id2"),
        (2, "id3"),
        (3, "id4"),
    ]
    assert store.enqueue(op(7)) == 4
    store.close()


def test_everything_survives_reopen(store_path: Path) -> None:
    store = Store(store_path)
    with store.transaction():
        store.set("device_id", "dev")
        store.set("cursor", 42)
        store.set("access_token", "tok")
        store.enqueue(op(1))
        store.save(
            Row(
                "note",
                "n1",
                {"title": "t", "deleted": False},
                {"title": "1.0.a"},
                "body",
                b"\x01\x02",
                {"version": 3},
            )
        )
        store.reject({**op(2), "client_seq": 2}, "validation", "too long")
        store.notify({"seq": 5, "kind": "milestone", "entity": "project", "id": "p"})
    store.close()

    again = Store(store_path)
    assert again.get("device_id") == "dev" and again.get_int("cursor") == 42
    assert again.get("access_token") == "tok"
    assert again.pending() == [{**op(1), "client_seq": 1}]
    assert again.row("note", "n1") == Row(
        "note",
        "n1",
        {"title": "t", "deleted": False},
        {"title": "1.0.a"},
        "body",
        b"\x01\x02",
        {"version": 3},
    )
    [rej] = again.rejections()
    assert (rej.client_seq, rej.code, rej.message) == (2, "validation", "too long")
    assert again.notifications("milestone")[0]["seq"] == 5
    again.close()


def test_failed_transaction_rolls_back(store_path: Path) -> None:
    store = Store(store_path)
    try:
        with store.transaction():
            store.enqueue(op(1))
            raise RuntimeError("crash mid-edit")
    except RuntimeError:
        pass
    assert store.pending() == [] and store.enqueue(op(1)) == 1
    store.close()


def test_a_store_made_before_confirmed_existed_opens_and_keeps_its_rows(store_path: Path) -> None:
    old = sqlite3.connect(store_path)
    for table in ("notes", "projects"):
        old.execute(
            f"CREATE TABLE {table} (id TEXT PRIMARY KEY, fields TEXT NOT NULL, clocks TEXT NOT"
            " NULL, deleted INTEGER NOT NULL DEFAULT 0, body TEXT NOT NULL DEFAULT '', body_state"
            " BLOB, derived TEXT NOT NULL DEFAULT '{}')"
        )
    old.execute("""INSERT INTO notes (id, fields, clocks) VALUES ('n', '{"title":"t"}', '{}')""")
    old.commit()
    old.close()
    store = Store(store_path)
    row = store.row("note", "n")
    assert row is not None and row.fields == {"title": "t"} and row.confirmed == {}
    row.confirmed["title"] = ["", None]
    store.save(row)
    again = store.row("note", "n")
    assert again is not None and again.confirmed == {"title": ["", None]}
    store.close()
