"""The per-user append-only log: allocate seqs, append planned events, read them back.

Seqs come from `users.head`, bumped under the user row's lock, which is held to commit:
a later seq for a user can only be allocated after the earlier one committed, so each
user's seq order is commit order and a reader never sees seq n+1 before n.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
from psycopg.rows import tuple_row

from syncd.db import Conn
from syncd.messages import Event
from syncd.plan import Planned

_json = msgspec.json.Encoder()


def iso(t: datetime | str) -> str:
    """An event's `at` on the wire: UTC, always to the microsecond (AT_TEXT's form), so
    times compare as strings."""
    if isinstance(t, str):
        return t
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# The same, made by PostgreSQL.
AT_TEXT = """to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def make_event(seq: int, row: dict[str, Any], payload: bytes | None) -> Event:
    """Turn a stored row into the wire event."""
    return _wire_event(seq, row["entity"], row["entity_id"], row["kind"], row["fields"],
                       row["hlc"], row["device_id"], row["author_id"], row["client_seq"],
                       iso(row["at"]), payload)


async def append(conn: Conn, planned: list[Planned]) -> dict[UUID, list[Event]]:
    """Append every planned event to each of its audience's logs. Returns them per user."""
    if not planned:
        return {}
    cur = await conn.execute(
        """SELECT array(SELECT nextval('op_ids') FROM generate_series(1, %s)) AS ids,
                  now() AS at""", (len(planned),))  # one row, not one per op
    ids = await cur.fetchone()
    assert ids is not None
    at: datetime = ids["at"]
    for p, op_id in zip(planned, ids["ids"], strict=True):
        p.op_id = op_id

    # Users are counted, numbered and grouped by their ids' integers: a UUID hashes and
    # compares in Python, several calls an event for a thousand events.
    counts: dict[int, int] = defaultdict(int)
    for p in planned:
        for user in p.audience:
            counts[user.int] += 1
    users = [UUID(int=u) for u in sorted(counts)]
    cur = await conn.execute(
        """WITH locked AS (SELECT id FROM users WHERE id = ANY(%s) ORDER BY id FOR UPDATE)
           UPDATE users u SET head = u.head + c.n
           FROM unnest(%s::uuid[], %s::bigint[]) AS c(id, n), locked
           WHERE u.id = c.id AND locked.id = c.id RETURNING u.id, u.head""",
        (users, users, [counts[u.int] for u in users]),
    )
    next_seq = {r["id"].int: r["head"] - counts[r["id"].int] + 1
                for r in await cur.fetchall()}

    by_user: dict[int, list[Event]] = defaultdict(list)
    payloads = [(p.op_id, p.payload) for p in planned if p.payload is not None]
    if payloads:
        async with conn.cursor().copy("COPY payloads (op_id, data) FROM STDIN") as copy:
            for payload in payloads:
                await copy.write_row(payload)
    # The rows are written as one COPY text buffer: psycopg's write_row per row was a
    # tenth of a large push. Only `fields` is free text; the rest are ids, numbers,
    # literals and validated clocks.
    at_text, at_wire = at.isoformat(), iso(at)
    # The author, device and members repeat on every row: their text is made once. An
    # entity id goes as its 32 hex digits (store._uuid_array: str() is slower).
    texts: dict[int | None, str] = {None: _NULL}

    def text(u: UUID | None) -> str:
        key = None if u is None else u.int
        t = texts.get(key)
        if t is None:
            t = texts[key] = str(u)
        return t

    lines = []
    for p in planned:
        fields = _NULL if p.fields is None else _copy_escape(_json.encode(p.fields).decode())
        shared = (f"{p.op_id}\t{p.entity}\t{p.entity_id.int:032x}\t{p.kind}\t{fields}\t"
                  f"{'t' if p.payload is not None else 'f'}\t{p.hlc}\t"
                  f"{text(p.device_id)}\t{text(p.author_id)}\t"
                  f"{_NULL if p.client_seq is None else p.client_seq}\t{at_text}\n")
        for user in p.audience:
            key = user.int
            seq = next_seq.get(key)
            if seq is None:
                continue  # an audience member without an account row: account deleted
            next_seq[key] = seq + 1
            lines.append(f"{text(user)}\t{seq}\t{shared}")
            by_user[key].append(_wire_event(seq, p.entity, p.entity_id, p.kind, p.fields,
                                            p.hlc, p.device_id, p.author_id, p.client_seq,
                                            at_wire, p.payload))
    async with conn.cursor().copy(
        """COPY events (user_id, seq, op_id, entity, entity_id, kind, fields, has_payload, hlc,
           device_id, author_id, client_seq, at) FROM STDIN"""
    ) as copy:
        await copy.write("".join(lines))
    return {u: by_user[u.int] for u in users if u.int in by_user}


_NULL = "\\N"


def _copy_escape(text: str) -> str:
    """Escape a value for COPY's text format."""
    return (text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
            .replace("\t", "\\t"))


async def head(conn: Conn, user: UUID) -> int:
    cur = await conn.execute("SELECT head FROM users WHERE id = %s", (user,))
    row = await cur.fetchone()
    return int(row["head"]) if row else 0


# A page is first read as the seq range (cursor, cursor + limit]: said outright, the read
# stays one page long even where the planner has no statistics yet (a fresh log), which
# otherwise read, joined and sorted every event past the cursor for each page. Seqs are
# gapless but for the events of a deleted account's notes and projects (erase.py), so a
# range that comes back short is read again without its upper bound.
_READ = f"""SELECT e.seq, e.entity, e.entity_id::text, e.kind, e.fields, e.hlc,
                   e.device_id::text, e.author_id::text, e.client_seq, {AT_TEXT}, p.data
            FROM events e LEFT JOIN payloads p ON e.has_payload AND p.op_id = e.op_id
            WHERE e.user_id = %(u)s AND e.seq > %(c)s {{bound}}
            ORDER BY e.seq LIMIT %(n)s"""
_READ_RANGE = _READ.format(bound="AND e.seq <= %(c)s::bigint + %(n)s")
_READ_REST = _READ.format(bound="")


async def read(conn: Conn, user: UUID, cursor: int, limit: int) -> list[Event]:
    """Events of the user's log with seq > cursor, in order, at most `limit`, for the
    wire only: their ids are text (their wire form), not UUIDs. psycopg making three
    UUIDs, a datetime and a dict of every row was half a pull's time."""
    params = {"u": user, "c": cursor, "n": limit}
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(_READ_RANGE, params)
        rows = await cur.fetchall()
        if len(rows) < limit:  # the log's end, or a gap: only the second has more
            await cur.execute(_READ_REST, params)
            rows = await cur.fetchall()
    return [_wire_event(*r) for r in rows]


def _wire_event(seq: int, entity: str, id: Any, kind: str, fields: Any, hlc: str,
                device: Any, author: Any, client_seq: int | None, at: str,
                data: bytes | None) -> Event:
    """An event from its stored columns; a text op's update or a put's document is `data`."""
    ev = Event(seq=seq, entity=entity, id=id, kind=kind, hlc=hlc, user_id=author, at=at,
               device_id=device, client_seq=client_seq)
    if kind == "text":
        ev.field, ev.update = "body", data
    elif kind == "put":
        ev.fields, ev.clocks, ev.body_state = fields["fields"], fields["clocks"], data
    else:
        ev.fields = fields
    return ev
