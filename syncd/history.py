"""History and time travel: an entity's changes in the caller's log, its past states, revert.

The caller's own log is the record: it holds every change of the entity they were shown
(a shared note's history, for a member, starts with the `put` that shared it), each with
its seq. A past state is a prefix of that log replayed by `rebuild.replay`, the merge
code of the live path, so `at?seq=N` is exactly what the caller's devices held after
pulling to N. A `put` replays as one `set` per field at that field's clock plus its
document state; a `revoke` forgets the entity until it is shared again.

A revert is new ops (edits.change_ops) from the current state to the past one: the log
keeps both, and the text diff merges with anyone editing at the same time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

from pycrdt import Doc, Text

from syncd import edits, queries
from syncd.db import Conn, Database
from syncd.errors import NotFound
from syncd.fanout import Hub
from syncd.fields import META, NOTE_COLS, PROJECT_COLS, WRITABLE, app_values
from syncd.merge import BODY, Entity, chunks
from syncd.rebuild import replay
from syncd.textdiff import changed_span
from syncd.types import Principal

KINDS = ["set", "text", "delete", "restore", "put", "revoke"]
SNIPPET = 200  # characters of inserted / deleted text shown per history entry


async def entity_events(conn: Conn, user: UUID, id: UUID, *, upto: int | None = None,
                        after: int = 0, until: int | None = None, limit: int | None = None,
                        payloads: bool = True) -> list[dict[str, Any]]:
    """The entity's events in the user's log, by op id (the (entity_id, op_id) index)."""
    data = "p.data" if payloads else "NULL::bytea AS data"
    cur = await conn.execute(
        f"""SELECT e.seq, e.op_id, e.entity, e.entity_id, e.kind, e.fields, e.hlc, e.device_id,
                   e.author_id, e.at, {data}
            FROM events e LEFT JOIN payloads p ON %(payloads)s AND e.has_payload
                                                 AND p.op_id = e.op_id
            WHERE e.entity_id = %(id)s AND e.user_id = %(u)s AND e.kind = ANY(%(kinds)s)
              AND e.seq <= %(upto)s AND e.op_id > %(after)s AND e.op_id <= %(until)s
            ORDER BY e.op_id LIMIT %(limit)s""",
        {"id": id, "u": user, "kinds": KINDS, "upto": upto if upto is not None else 2**62,
         "after": after, "until": until if until is not None else 2**62, "limit": limit,
         "payloads": payloads})
    return await cur.fetchall()


# --- pure -----------------------------------------------------------------------------


def source_rows(rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Rows `replay` understands: the events after the last revoke, puts spelled out."""
    rows = list(rows)
    revoked = max((i for i, r in enumerate(rows) if r["kind"] == "revoke"), default=-1)
    for r in rows[revoked + 1:]:
        if r["kind"] != "put":
            yield r
            continue
        put = r["fields"] or {}
        for name, clock in sorted(put.get("clocks", {}).items()):
            yield {**r, "kind": "set", "fields": {name: put["fields"].get(name)}, "hlc": clock}
        if r["data"]:
            yield {**r, "kind": "text"}


def state_at(rows: list[dict[str, Any]]) -> Entity | None:
    """The entity after these events (None when it did not exist or was revoked)."""
    if not rows:
        return None
    return replay(source_rows(rows), count_words=False).entities.get(rows[0]["entity_id"])


def past_view(ent: Entity, seq: int) -> dict[str, Any]:
    out: dict[str, Any] = {"id": ent.id, "seq": seq}
    for col in NOTE_COLS if ent.entity == "note" else PROJECT_COLS:
        out[col] = ent.fields.get(col)
    out["meta"] = app_values(ent.entity, ent.fields)
    out.update(version=ent.version, clocks=ent.clocks, created_at=ent.created_at,
               updated_at=ent.updated_at)
    if ent.entity == "note":
        out.update(body=ent.body, word_count=ent.word_count)
    return out


def _diff(old: str, new: str) -> dict[str, Any]:
    p, s = changed_span(old, new)
    inserted, deleted = new[p:len(new) - s], old[p:len(old) - s]
    return {"at": p, "inserted": inserted[:SNIPPET], "deleted": deleted[:SNIPPET],
            "inserted_chars": len(inserted), "deleted_chars": len(deleted)}


def changes(prior: list[dict[str, Any]], page: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """History entries for `page`; `prior` (the events before it) only feeds the text diffs."""
    doc: Doc[Any] = Doc()
    text = doc.get(BODY, type=Text)

    def apply(r: dict[str, Any]) -> None:
        nonlocal doc, text
        if r["kind"] == "revoke":
            doc = Doc()
            text = doc.get(BODY, type=Text)
        elif r["data"]:
            doc.apply_update(r["data"])

    # The document before the page: everything after the last revoke, in merged chunks.
    revoked = max((i for i, r in enumerate(prior) if r["kind"] == "revoke"), default=-1)
    for part in chunks([r["data"] for r in prior[revoked + 1:] if r["data"]]):
        doc.apply_update(part)
    out = []
    for r in page:
        entry: dict[str, Any] = {
            "seq": r["seq"], "op_id": r["op_id"], "kind": r["kind"], "at": r["at"],
            "hlc": r["hlc"], "user_id": r["author_id"], "device_id": r["device_id"]}
        before = str(text) if r["kind"] in ("text", "put") else ""
        apply(r)
        if r["kind"] == "set":
            entry["fields"] = r["fields"]
        elif r["kind"] == "put":
            entry["fields"] = (r["fields"] or {}).get("fields")
        if r["kind"] in ("text", "put") and r["data"]:
            entry["text"] = _diff(before, str(text))
        out.append(entry)
    return out


# --- use cases ------------------------------------------------------------------------


async def _visible(conn: Conn, who: Principal, kind: str, id: UUID) -> None:
    if await queries.get_row(conn, who.user_id, kind, id, state=False) is None:
        raise NotFound(f"no such {kind}")


async def history(db: Database, who: Principal, kind: str, id: UUID, after: int,
                  limit: int) -> dict[str, Any]:
    async def tx(conn: Conn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        await _visible(conn, who, kind, id)
        if kind == "note":  # text diffs need the document as it was before the page
            rows = await entity_events(conn, who.user_id, id)
            start = next((i for i, r in enumerate(rows) if r["op_id"] > after), len(rows))
            prior, page = rows[:start], rows[start:start + limit + 1]
        else:
            prior = []
            page = await entity_events(conn, who.user_id, id, after=after, limit=limit + 1,
                                       payloads=False)
        return prior, page

    prior, page = await db.run(tx, read_only=True, repeatable=True)
    more = len(page) > limit
    page = page[:limit]
    return {"events": await asyncio.to_thread(changes, prior, page),
            "cursor": page[-1]["op_id"] if page else after, "has_more": more}


async def seq_at_time(conn: Conn, user: UUID, id: UUID, at: datetime) -> int:
    cur = await conn.execute(
        """SELECT coalesce(max(seq), 0) AS seq FROM events
           WHERE entity_id = %s AND user_id = %s AND at <= %s""", (id, user, at))
    row = await cur.fetchone()
    return int(row["seq"]) if row else 0


async def past(db: Database, who: Principal, kind: str, id: UUID, seq: int | None,
               at: datetime | None) -> tuple[Entity, int]:
    """The entity as the caller's log had it at `seq` (or at time `at`), and that seq."""
    async def tx(conn: Conn) -> tuple[list[dict[str, Any]], int]:
        await _visible(conn, who, kind, id)
        n = seq if seq is not None else await seq_at_time(conn, who.user_id, id, at)  # type: ignore[arg-type]
        return await entity_events(conn, who.user_id, id, upto=n), n

    rows, n = await db.run(tx, read_only=True, repeatable=True)
    ent = await asyncio.to_thread(state_at, rows)
    if ent is None or ent.entity != kind:
        raise NotFound(f"the {kind} did not exist (for you) at that point",
                       code="not_found_then")
    return ent, n


async def body_at_version(db: Database, who: Principal, id: UUID, version: int) -> bytes:
    """The note's document as of `version` (the ETag a client read), for a three-way body
    merge: a diff from it keeps what others wrote since, a diff from now would undo it."""
    async def tx(conn: Conn) -> list[dict[str, Any]]:
        await _visible(conn, who, "note", id)
        return await entity_events(conn, who.user_id, id, until=version)

    ent = await asyncio.to_thread(state_at, await db.run(tx, read_only=True, repeatable=True))
    if ent is None:
        raise edits.Unprocessable("base_version is not a version of this note",
                                  {"base_version": version})
    return ent.body_state or b""


async def revert(db: Database, hub: Hub, who: Principal, kind: str, id: UUID, seq: int | None,
                 at: datetime | None, if_match: str | None) -> dict[str, Any]:
    then, _ = await past(db, who, kind, id, seq, at)

    def build(current: Entity | None) -> list[Any]:
        assert current is not None
        names = [*WRITABLE[kind], *sorted({f for f in [*then.fields, *current.fields]
                                           if f.startswith(META)})]
        fields = {f: then.fields.get(f) for f in names
                  if then.fields.get(f) != current.fields.get(f)}
        body = then.body if kind == "note" else None
        return edits.change_ops(kind, id, current, fields, body, deleted=then.deleted)

    return await edits.write(db, hub, who, kind, id, build, if_match=if_match)
