"""Sync use cases: push, pull, snapshot, status, and server-made writes. One transaction each.

Flow: validate the request → lock the device and the entities → plan the batch (pure,
plan.py) → append to the log and save the projection in the same transaction → after
commit, hand the events to the fan-out hub (unit.py, which every writer commits through).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from syncd import docs, log, offload, store
from syncd import hlc as hlcs
from syncd.db import Conn, Database
from syncd.errors import BadRequest, ClientSeqGap, PayloadTooLarge, Unauthorized
from syncd.fanout import Hub
from syncd.limits import MAX_OPS_PER_PUSH
from syncd.merge import Entity
from syncd.messages import Event, Op, OpResult, PullResponse, PushResponse
from syncd.plan import Batch
from syncd.projection import record
from syncd.store import NOTE_SELECT, PROJECT_SELECT, SETTINGS_SELECT
from syncd.types import Principal
from syncd.unit import Unit, commit
from syncd.views import entity_view, settings_view


def check_ops(ops: list[Op], device_id: UUID, server_ms: int) -> list[str]:
    """Request-level checks, refused whole with a 4xx before anything is applied.
    Returns each op's clock with a wall time too far ahead brought back (hlc.canonical);
    the push raises them above the device's previous clock under its row lock."""
    if len(ops) > MAX_OPS_PER_PUSH:
        raise PayloadTooLarge(f"at most {MAX_OPS_PER_PUSH} ops per push",
                              {"limit": MAX_OPS_PER_PUSH})
    node = str(device_id)
    clocks = []
    for i, op in enumerate(ops):
        clock = hlcs.canonical(op.hlc, node, server_ms)
        if clock is None:
            wrong_node = hlcs.parse(op.hlc) is not None
            raise BadRequest(f"ops[{i}].hlc " + ("must end with this device's id" if wrong_node
                                                 else "is malformed"),
                             {"index": i}, code="invalid_hlc")
        clocks.append(clock)
    return clocks


async def apply_ops(unit: Unit, who: Principal, ops: Sequence[tuple[Op, str | None]],
                    locked: dict[UUID, Entity] | None = None,
                    vouched: frozenset[UUID] = frozenset()) -> list[OpResult]:
    """Plan and write a batch of (op, canonical hlc) in the caller's unit of work; a
    server-made op passes None and is stamped here, once its entities are locked.

    The one path for ops: push, server-made writes, REST edits with preconditions,
    conflict resolution and import all go through it.
    `locked`: entities the caller has locked and loaded already; they are updated in place.
    `vouched`: the notes of collab rooms writing behind what they admitted (plan.Batch).
    """
    conn = unit.conn
    ids = {op.id for op, _ in ops}
    ids |= {UUID(p) for op, _ in ops if op.fields and op.entity == "note"
            for p in [op.fields.get("project_id")] if isinstance(p, str) and _is_uuid(p)}
    # A text op needs the document; so may a project_id write (a move `put`s the note).
    with_state = {op.id for op, _ in ops if op.kind == "text"
                  or (op.entity == "note" and op.fields and "project_id" in op.fields)}
    # Only these can change a project: a write to it, and a note's text, deletion,
    # restoration or move (its words count towards the project's).
    project_writes = any(op.entity == "project" or op.kind != "set"
                         or (op.fields and "project_id" in op.fields) for op, _ in ops)
    settings = {op.id for op, _ in ops if op.entity == "settings"} - set(locked or ())
    entities = await store.lock_entities(conn, ids - settings, with_state, locked,
                                         share_projects=not project_writes)
    if settings:
        entities.update(await store.lock_settings(conn, settings))
    docs.cache.take(e for e in entities.values() if e.id in with_state)
    stamped = _stamp(ops, entities, who.device_id)
    project_ids = {e.id for e in entities.values() if e.entity == "project"}
    members = await store.load_members(conn, project_ids)
    writers = await store.load_writers(conn, who.user_id, entities, (op for op, _ in ops))
    batch = Batch(who.user_id, who.device_id, entities, members,
                  lambda: hlcs.clock.tick(who.device_id), writers, vouched)

    def planned() -> list[OpResult]:  # pure: no connection in here (offload.py)
        results = batch.apply_all(stamped)
        batch.finish()
        return results

    results = await offload.plan(planned, offload.is_large((op for op, _ in stamped), entities))
    events = await unit.append(batch.events)
    for ent, event, won in batch.changes:  # in order: the last write of a field is its writer
        record(ent, event.op_id, won)
    for p in batch.events:
        if p.kind == "milestone":
            _record_milestone(entities[p.entity_id], p.fields or {}, events, p.op_id)
    await store.add_members(conn, batch.new_members)
    await store.add_conflicts(conn, who.user_id, batch.conflicts)
    await store.save_entities(conn, entities.values())
    await store.record_words(conn, batch.words.tally)
    docs.cache.keep(entities.values())
    return results


def _stamp(ops: Sequence[tuple[Op, str | None]], entities: dict[UUID, Entity],
           node: UUID) -> list[tuple[Op, str]]:
    """Give server-made ops (clock None) a server clock above every clock the locked
    entities hold and every clock of the batch: a field a device set ahead of this node's
    clock (up to the skew limit), here or on another node before a restart, never beats a
    later REST, collab or resolving write. The batch's own server events (`put`,
    `conflict`, `milestone`) tick from the same clock, after this."""
    seen = max((c for ent in entities.values() for c in ent.clocks.values()), default="")
    seen = max(seen, max((c for _, c in ops if c), default=""))
    if seen:
        hlcs.clock.observe(seen)
    return [(op, clock or hlcs.clock.tick(node)) for op, clock in ops]


def _record_milestone(project: Any, fields: dict[str, Any], events: dict[UUID, list[Event]],
                      op_id: int) -> None:
    owner_events = events.get(project.owner_id, [])
    match = next((e for e in owner_events if e.kind == "milestone" and e.id == project.id
                  and e.fields == fields), None)
    project.milestones[str(fields["milestone"])] = {
        "seq": match.seq if match else 0, "at": match.at if match else None, "op_id": op_id,
    }


def _is_uuid(s: str) -> bool:
    try:
        UUID(s)
    except ValueError:
        return False
    return True


async def push(db: Database, hub: Hub, who: Principal, ops: list[Op]) -> PushResponse:
    clocks = check_ops(ops, who.device_id, hlcs.now_ms())

    async def tx(unit: Unit) -> PushResponse:
        conn = unit.conn
        cur = await conn.execute(
            "SELECT acked, last_hlc FROM devices WHERE id = %s AND user_id = %s"
            " AND revoked_at IS NULL FOR UPDATE", (who.device_id, who.user_id))
        row = await cur.fetchone()
        if row is None:
            raise Unauthorized("this device has been revoked")
        acked, last = int(row["acked"]), row["last_hlc"]
        if ops:
            first = ops[0].client_seq
            contiguous = all(op.client_seq == first + i for i, op in enumerate(ops))
            if not contiguous or first < 1 or first > acked + 1:
                raise ClientSeqGap(acked + 1)
        results = [OpResult(op.client_seq, "duplicate") for op in ops if op.client_seq <= acked]
        fresh: list[tuple[Op, str | None]] = []
        for op, clock in zip(ops, clocks, strict=True):
            if op.client_seq > acked:  # each above the device's previous canonical clock
                last = hlcs.above(clock, last)
                fresh.append((op, last))
        if fresh:
            results += await apply_ops(unit, who, fresh)
            acked = fresh[-1][0].client_seq
            await conn.execute(
                "UPDATE devices SET acked = %s, last_hlc = %s, last_seen_at = now()"
                " WHERE id = %s", (acked, last, who.device_id))
        return PushResponse(acked, await log.head(conn, who.user_id), results)

    return await commit(db, hub, tx)


async def write(db: Database, hub: Hub, who: Principal, ops: list[Op],
                vouched: frozenset[UUID] = frozenset()) -> list[OpResult]:
    """Server-made ops (REST, collab): no client_seq, a server HLC, the same merge and log.
    `vouched`: collab rooms' notes, whose text ops they admitted (plan.Batch)."""
    unstamped: list[tuple[Op, str | None]] = [(op, None) for op in ops]

    async def tx(unit: Unit) -> list[OpResult]:
        return await apply_ops(unit, who, unstamped, vouched=vouched)

    return await commit(db, hub, tx)


async def resume_clock(db: Database) -> None:
    """Start the server clock above every device clock the database has accepted (on any
    node, before any restart), so a server-made op is not stamped below them."""
    async def tx(conn: Conn) -> str | None:
        cur = await conn.execute("SELECT max(last_hlc) AS high FROM devices")
        row = await cur.fetchone()
        return row["high"] if row else None

    high = await db.run(tx, read_only=True)
    if high:
        hlcs.clock.observe(high)


async def pull(db: Database, who: Principal, cursor: int, limit: int) -> PullResponse:
    async def tx(conn: Conn) -> PullResponse:
        events = await log.read(conn, who.user_id, cursor, limit + 1)
        more = len(events) > limit
        events = events[:limit]
        return PullResponse(events, events[-1].seq if events else cursor, more)

    return await db.run(tx, read_only=True)


async def snapshot(db: Database, who: Principal) -> dict[str, Any]:
    async def tx(conn: Conn) -> dict[str, Any]:
        head = await log.head(conn, who.user_id)
        cur = await conn.execute(
            f"""SELECT {PROJECT_SELECT} FROM projects p JOIN members m ON m.project_id = p.id
               WHERE m.user_id = %s ORDER BY p.id""", (who.user_id,))
        projects = await cur.fetchall()
        members = await store.load_members(conn, [p["id"] for p in projects])
        cur = await conn.execute(
            f"""SELECT {NOTE_SELECT} FROM notes n WHERE n.owner_id = %(u)s OR n.project_id IN
               (SELECT project_id FROM members WHERE user_id = %(u)s) ORDER BY n.id""",
            {"u": who.user_id})
        notes = await cur.fetchall()
        cur = await conn.execute(f"SELECT {SETTINGS_SELECT} FROM settings WHERE user_id = %s",
                                 (who.user_id,))
        return {
            "cursor": head,
            "notes": [entity_view("note", n) for n in notes],
            "projects": [entity_view("project", p, members.get(p["id"], {})) for p in projects],
            "settings": settings_view(await cur.fetchone(), who.user_id),
        }

    # REPEATABLE READ: the head and every row are read from one snapshot of the database.
    return await db.run(tx, read_only=True, repeatable=True)


async def status(db: Database, who: Principal) -> dict[str, Any]:
    async def tx(conn: Conn) -> dict[str, Any]:
        cur = await conn.execute(
            """SELECT id, name, platform, acked, created_at, last_seen_at,
                      revoked_at IS NOT NULL AS revoked
               FROM devices WHERE user_id = %s ORDER BY created_at""", (who.user_id,))
        devices = await cur.fetchall()
        mine = next((d for d in devices if d["id"] == who.device_id), None)
        return {
            "cursor": await log.head(conn, who.user_id),
            "acked": mine["acked"] if mine else 0,
            "devices": [{**d, "current": d["id"] == who.device_id} for d in devices],
        }

    return await db.run(tx, read_only=True)
