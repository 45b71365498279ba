"""The device's local SQLite store: one file, WAL mode, everything a restart needs.

Tables: `meta` (device, tokens, cursor, acked, clock, server url), `outbox`
(queued ops by `client_seq`), `sent` (pushed ops whose canonical clock is not
known yet), `notes` / `projects` / `settings` (the local projection; settings is
one row, the user's), `rejections` (ops the
server refused, with the reason) and `notifications` (milestone, member and
conflict events). The store knows rows, not sync rules: see `projection.py`
and `outbox.py` for those.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd_client.types import EntityName, Json

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    client_seq INTEGER PRIMARY KEY, entity TEXT NOT NULL, id TEXT NOT NULL,
    kind TEXT NOT NULL, hlc TEXT NOT NULL, op TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sent (
    client_seq INTEGER PRIMARY KEY, entity TEXT NOT NULL, id TEXT NOT NULL,
    hlc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notes (
    id TEXT PRIMARY KEY, fields TEXT NOT NULL, clocks TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0, body TEXT NOT NULL DEFAULT '',
    body_state BLOB, derived TEXT NOT NULL DEFAULT '{}',
    confirmed TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY, fields TEXT NOT NULL, clocks TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0, body TEXT NOT NULL DEFAULT '',
    body_state BLOB, derived TEXT NOT NULL DEFAULT '{}',
    confirmed TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS settings (
    id TEXT PRIMARY KEY, fields TEXT NOT NULL, clocks TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0, body TEXT NOT NULL DEFAULT '',
    body_state BLOB, derived TEXT NOT NULL DEFAULT '{}',
    confirmed TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS rejections (
    client_seq INTEGER PRIMARY KEY, entity TEXT NOT NULL, id TEXT NOT NULL,
    kind TEXT NOT NULL, code TEXT NOT NULL, message TEXT NOT NULL DEFAULT '',
    op TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notifications (
    seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, entity TEXT NOT NULL,
    id TEXT NOT NULL, event TEXT NOT NULL);
"""

_TABLE: dict[str, str] = {"note": "notes", "project": "projects", "settings": "settings"}


@dataclass
class Row:
    """One entity of the local projection. `fields` includes `deleted`; `clocks` is per field;
    `confirmed` is, per field holding a write of this device whose canonical clock is not
    known yet, the greatest [clock, value] the server is known to hold (merge.py)."""

    entity: EntityName
    id: str
    fields: Json = field(default_factory=dict)
    clocks: dict[str, str] = field(default_factory=dict)
    body: str = ""
    body_state: bytes | None = None
    derived: Json = field(default_factory=dict)
    confirmed: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def deleted(self) -> bool:
        return bool(self.fields.get("deleted", False))


@dataclass(frozen=True)
class Rejection:
    client_seq: int
    entity: str
    id: str
    kind: str
    code: str
    message: str
    op: Json


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class Store:
    """A thread-safe handle on the store file; `transaction()` groups writes atomically."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are explicit, see `transaction()`.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        for table in _TABLE.values():  # a store made before `confirmed` existed
            columns = {r["name"] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if "confirmed" not in columns:
                self._db.execute(
                    f"ALTER TABLE {table} ADD COLUMN confirmed TEXT NOT NULL DEFAULT '{{}}'"
                )
        self.lock = threading.RLock()
        self._depth = 0

    def close(self) -> None:
        with self.lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """An IMMEDIATE transaction; nested calls join the outer one."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")
            finally:
                self._depth = 0

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self.lock:
            return self._db.execute(sql, args)

    # --- meta ----------------------------------------------------------------------------

    def get(self, key: str, default: str | None = None) -> str | None:
        row = self._exec("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row["value"]) if row else default

    def set(self, key: str, value: str | int | None) -> None:
        if value is None:
            self._exec("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._exec(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, str(value)),
            )

    def get_int(self, key: str, default: int = 0) -> int:
        value = self.get(key)
        return int(value) if value is not None else default

    # --- outbox --------------------------------------------------------------------------

    def enqueue(self, op: Json) -> int:
        """Append an op (without `client_seq`) and return the number it was given."""
        with self.transaction():
            seq = self.get_int("next_seq", 1)
            self._exec(
                "INSERT INTO outbox (client_seq, entity, id, kind, hlc, op) VALUES (?,?,?,?,?,?)",
                (seq, op["entity"], op["id"], op["kind"], op["hlc"], _dumps(op)),
            )
            self.set("next_seq", seq + 1)
            return seq

    def pending(self, limit: int = 1000) -> list[Json]:
        """The oldest `limit` queued ops, each with its `client_seq`, ascending."""
        rows = self._exec(
            "SELECT client_seq, op FROM outbox ORDER BY client_seq LIMIT ?", (limit,)
        ).fetchall()
        return [{**json.loads(r["op"]), "client_seq": r["client_seq"]} for r in rows]

    def outbox_size(self) -> int:
        return int(self._exec("SELECT count(*) FROM outbox").fetchone()[0])

    def drop_ops(self, seqs: list[int]) -> None:
        with self.transaction():
            for seq in seqs:
                self._exec("DELETE FROM outbox WHERE client_seq = ?", (seq,))

    def drop_ops_below(self, seq: int) -> int:
        return self._exec("DELETE FROM outbox WHERE client_seq < ?", (seq,)).rowcount

    def renumber_from(self, first: int) -> None:
        """Renumber the queued ops contiguously from `first`, keeping their order."""
        with self.transaction():
            rows = self._exec("SELECT client_seq FROM outbox ORDER BY client_seq").fetchall()
            old = [int(r["client_seq"]) for r in rows]
            # Move out of the way first so the primary key never collides.
            offset = max([*old, first]) + len(old) + 1
            for i, seq in enumerate(old):
                self._exec(
                    "UPDATE outbox SET client_seq = ? WHERE client_seq = ?", (offset + i, seq)
                )
            for i in range(len(old)):
                self._exec(
                    "UPDATE outbox SET client_seq = ? WHERE client_seq = ?", (first + i, offset + i)
                )
            self.set("next_seq", first + len(old))

    # --- sent ops awaiting their canonical clock ------------------------------------------

    def remember_sent(self, seq: int, entity: str, id: str, hlc: str) -> None:
        self._exec(
            "INSERT OR REPLACE INTO sent (client_seq, entity, id, hlc) VALUES (?,?,?,?)",
            (seq, entity, id, hlc),
        )

    def forget_sent_from(self, seq: int) -> None:
        """Forget sent ops numbered `seq` or above (the server never consumed them)."""
        self._exec("DELETE FROM sent WHERE client_seq >= ?", (seq,))

    def take_sent(self, seq: int) -> tuple[str, str, str] | None:
        """Forget a sent op and return its (entity, id, original hlc), if remembered."""
        with self.transaction():
            row = self._exec(
                "SELECT entity, id, hlc FROM sent WHERE client_seq = ?", (seq,)
            ).fetchone()
            if row is None:
                return None
            self._exec("DELETE FROM sent WHERE client_seq = ?", (seq,))
            return str(row["entity"]), str(row["id"]), str(row["hlc"])

    # --- projection ----------------------------------------------------------------------

    def row(self, entity: EntityName, id: str) -> Row | None:
        r = self._exec(f"SELECT * FROM {_TABLE[entity]} WHERE id = ?", (id,)).fetchone()
        return self._to_row(entity, r) if r else None

    def save(self, row: Row) -> None:
        self._exec(
            f"INSERT OR REPLACE INTO {_TABLE[row.entity]} "
            "(id, fields, clocks, deleted, body, body_state, derived, confirmed)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (
                row.id,
                _dumps(row.fields),
                _dumps(row.clocks),
                int(row.deleted),
                row.body,
                row.body_state,
                _dumps(row.derived),
                _dumps(row.confirmed),
            ),
        )

    def drop(self, entity: EntityName, id: str) -> bool:
        return self._exec(f"DELETE FROM {_TABLE[entity]} WHERE id = ?", (id,)).rowcount > 0

    def rows(self, entity: EntityName, where: str = "", args: tuple[Any, ...] = ()) -> list[Row]:
        """Rows of one table; `where` is an SQL condition over its columns (json1 allowed)."""
        sql = f"SELECT * FROM {_TABLE[entity]}" + (f" WHERE {where}" if where else "")
        return [self._to_row(entity, r) for r in self._exec(sql, args).fetchall()]

    @staticmethod
    def _to_row(entity: EntityName, r: sqlite3.Row) -> Row:
        return Row(
            entity=entity,
            id=r["id"],
            fields=json.loads(r["fields"]),
            clocks=json.loads(r["clocks"]),
            body=r["body"],
            body_state=bytes(r["body_state"]) if r["body_state"] is not None else None,
            derived=json.loads(r["derived"]),
            confirmed=json.loads(r["confirmed"]),
        )

    # --- rejections and notifications ----------------------------------------------------

    def reject(self, op: Json, code: str, message: str) -> None:
        body = {k: v for k, v in op.items() if k != "client_seq"}
        self._exec(
            "INSERT OR REPLACE INTO rejections (client_seq, entity, id, kind, code, message, op) "
            "VALUES (?,?,?,?,?,?,?)",
            (op["client_seq"], op["entity"], op["id"], op["kind"], code, message, _dumps(body)),
        )

    def rejections(self) -> list[Rejection]:
        rows = self._exec("SELECT * FROM rejections ORDER BY client_seq").fetchall()
        return [
            Rejection(
                r["client_seq"],
                r["entity"],
                r["id"],
                r["kind"],
                r["code"],
                r["message"],
                json.loads(r["op"]),
            )
            for r in rows
        ]

    def notify(self, event: Json) -> None:
        self._exec(
            "INSERT OR IGNORE INTO notifications (seq, kind, entity, id, event) VALUES (?,?,?,?,?)",
            (
                event["seq"],
                event["kind"],
                event.get("entity", ""),
                event.get("id", ""),
                _dumps(event),
            ),
        )

    def notifications(self, kind: str | None = None) -> list[Json]:
        sql = "SELECT event FROM notifications"
        args: tuple[Any, ...] = ()
        if kind is not None:
            sql, args = sql + " WHERE kind = ?", (kind,)
        rows = self._exec(sql + " ORDER BY seq", args).fetchall()
        return [json.loads(r["event"]) for r in rows]
