"""The projection tables: load notes/projects into `Entity` objects and write them back.

Loads lock rows in id order (notes, then projects) so concurrent batches queue instead
of deadlocking; writes are one statement per table per batch, never one per op.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from syncd.db import Conn
from syncd.merge import Entity
from syncd.plan import Members

NOTE_COLS = ("title", "tags", "pinned", "favorite", "project_id", "deleted")
PROJECT_COLS = ("title", "description", "word_goal", "status", "deleted")


def entity_from_row(kind: str, row: dict[str, Any]) -> Entity:
    cols = NOTE_COLS if kind == "note" else PROJECT_COLS
    fields = {c: row[c] for c in cols}
    if kind == "note" and fields["project_id"] is not None:
        fields["project_id"] = str(fields["project_id"])
    return Entity(
        kind, row["id"], row["owner_id"], fields, dict(row["clocks"]),
        body_state=row.get("body_state"), body=row.get("body", ""),
        word_count=row["word_count"], milestones=dict(row.get("milestones") or {}),
        version=row["version"], created_at=row["created_at"], updated_at=row["updated_at"],
    )


async def lock_entities(conn: Conn, ids: Iterable[UUID]) -> dict[UUID, Entity]:
    """Lock and load the given notes, then every project they or `ids` refer to."""
    ids = sorted(set(ids))
    cur = await conn.execute(
        "SELECT * FROM notes WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (ids,)
    )
    found = {r["id"]: entity_from_row("note", r) for r in await cur.fetchall()}
    pids = set(ids) - set(found)
    pids |= {n.project_id for n in found.values() if n.project_id}
    cur = await conn.execute(
        "SELECT * FROM projects WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (sorted(pids),)
    )
    found.update({r["id"]: entity_from_row("project", r) for r in await cur.fetchall()})
    return found


async def load_members(conn: Conn, project_ids: Iterable[UUID]) -> Members:
    cur = await conn.execute(
        "SELECT project_id, user_id, role FROM members WHERE project_id = ANY(%s)",
        (list(project_ids),),
    )
    members: Members = {}
    for r in await cur.fetchall():
        members.setdefault(r["project_id"], {})[r["user_id"]] = r["role"]
    return members


def _pid(v: Any) -> UUID | None:
    return UUID(v) if v else None


async def save_entities(conn: Conn, entities: Iterable[Entity]) -> None:
    """Insert the new and update the changed entities: one statement per table and kind."""
    dirty = [e for e in entities if e.dirty]
    for kind in ("project", "note"):
        for new in (True, False):
            rows = [e for e in dirty if e.entity == kind and e.is_new == new]
            if rows:
                await (_save_notes if kind == "note" else _save_projects)(conn, rows, new)


async def _save_notes(conn: Conn, rows: list[Entity], new: bool) -> None:
    cols = [
        [e.id for e in rows], [e.owner_id for e in rows],
        [_pid(e.fields["project_id"]) for e in rows], [e.fields["title"] for e in rows],
        [Jsonb(e.fields["tags"]) for e in rows], [e.fields["pinned"] for e in rows],
        [e.fields["favorite"] for e in rows], [e.fields["deleted"] for e in rows],
        [e.body for e in rows], [e.body_state for e in rows], [e.word_count for e in rows],
        [Jsonb(e.clocks) for e in rows], [e.version for e in rows],
    ]
    src = """unnest(%s::uuid[], %s::uuid[], %s::uuid[], %s::text[], %s::jsonb[], %s::bool[],
        %s::bool[], %s::bool[], %s::text[], %s::bytea[], %s::int[], %s::jsonb[], %s::bigint[])
        AS v(id, owner_id, project_id, title, tags, pinned, favorite, deleted, body,
             body_state, word_count, clocks, version)"""
    if new:
        await conn.execute(
            f"""INSERT INTO notes (id, owner_id, project_id, title, tags, pinned, favorite,
                deleted, body, body_state, word_count, clocks, version)
                SELECT * FROM {src}""", cols)
    else:
        await conn.execute(
            f"""UPDATE notes n SET project_id = v.project_id, title = v.title, tags = v.tags,
                pinned = v.pinned, favorite = v.favorite, deleted = v.deleted, body = v.body,
                body_state = v.body_state, word_count = v.word_count, clocks = v.clocks,
                version = v.version, updated_at = now()
                FROM {src} WHERE n.id = v.id""", cols)


async def _save_projects(conn: Conn, rows: list[Entity], new: bool) -> None:
    cols = [
        [e.id for e in rows], [e.owner_id for e in rows], [e.fields["title"] for e in rows],
        [e.fields["description"] for e in rows], [e.fields["word_goal"] for e in rows],
        [e.fields["status"] for e in rows], [e.fields["deleted"] for e in rows],
        [e.word_count for e in rows], [Jsonb(e.milestones) for e in rows],
        [Jsonb(e.clocks) for e in rows], [e.version for e in rows],
    ]
    src = """unnest(%s::uuid[], %s::uuid[], %s::text[], %s::text[], %s::int[], %s::text[],
        %s::bool[], %s::int[], %s::jsonb[], %s::jsonb[], %s::bigint[])
        AS v(id, owner_id, title, description, word_goal, status, deleted, word_count,
             milestones, clocks, version)"""
    if new:
        await conn.execute(
            f"""INSERT INTO projects (id, owner_id, title, description, word_goal, status,
                deleted, word_count, milestones, clocks, version)
                SELECT * FROM {src}""", cols)
    else:
        await conn.execute(
            f"""UPDATE projects p SET title = v.title, description = v.description,
                word_goal = v.word_goal, status = v.status, deleted = v.deleted,
                word_count = v.word_count, milestones = v.milestones, clocks = v.clocks,
                version = v.version, updated_at = now()
                FROM {src} WHERE p.id = v.id""", cols)


async def add_members(conn: Conn, rows: list[tuple[UUID, UUID, str]]) -> None:
    if rows:
        await conn.execute(
            """INSERT INTO members (project_id, user_id, role)
               SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::text[])
               ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role""",
            ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
        )
