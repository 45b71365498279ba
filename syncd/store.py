"""The projection tables: load notes/projects into `Entity` objects and write them back.

Loads lock rows in id order (notes, then projects) so concurrent batches queue instead
of deadlocking; writes are one statement per table per batch, never one per op.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

import msgspec

from syncd import log
from syncd.db import Conn
from syncd.fields import META, NOTE_COLS, PROJECT_COLS, app_values, meta_fields
from syncd.merge import Entity
from syncd.messages import Op
from syncd.plan import Members, Writer
from syncd.words import Tally

_COMMON = "id, owner_id, word_count, clocks, version, created_at, updated_at"
# The projection columns, named: `SELECT *` would also drag the search tsvector along.
NOTE_SELECT = f"{_COMMON}, {', '.join(NOTE_COLS)}, meta, body, body_state, writers"
# What a batch needs: no timestamps (a save sets updated_at itself), the JSON columns as
# one array (psycopg then decodes one value a row, not four: a tenth of reading a
# thousand notes), and the document only for ids in the %(state)s array.
_MAPS = ("clocks", "writers", "tags", "meta")
_NOTE_LOCK_SELECT = (
    "id, owner_id, word_count, version, "
    + ", ".join(c for c in NOTE_COLS if c not in _MAPS)
    + f", json_build_array({', '.join(_MAPS)}) AS maps,"
    " CASE WHEN id = ANY(%(state)s::uuid[]) THEN body END AS body,"
    " CASE WHEN id = ANY(%(state)s::uuid[]) THEN body_state END AS body_state,"
    " id = ANY(%(state)s::uuid[]) AS state_loaded")
PROJECT_SELECT = f"{_COMMON}, {', '.join(PROJECT_COLS)}, meta, milestones, writers"
SETTINGS_SELECT = ("user_id AS id, user_id AS owner_id, 0 AS word_count, clocks, version,"
                   " created_at, updated_at, fields, writers")


def _cleared(clocks: dict[str, str], prefix: str) -> dict[str, None]:
    """The keys a row's clocks know but its map leaves out: cleared (set to null)."""
    return {k: None for k in clocks if k.startswith(prefix)}


def entity_from_row(kind: str, row: dict[str, Any]) -> Entity:
    if kind == "settings":
        fields = {**_cleared(row["clocks"], ""), **row["fields"]}
    else:
        cols = NOTE_COLS if kind == "note" else PROJECT_COLS
        fields = {c: row[c] for c in cols}
        for k in row["clocks"]:  # a loop, not merged dicts: a batch reads a thousand rows
            if k.startswith(META):
                fields[k] = None  # cleared, unless the map below holds it
        meta = row.get("meta")
        if meta:
            fields.update(meta_fields(meta))
        if kind == "note" and fields["project_id"] is not None:
            fields["project_id"] = str(fields["project_id"])
        if kind == "project" and fields["deadline"] is not None:
            fields["deadline"] = fields["deadline"].isoformat()
    ent = Entity(
        kind, row["id"], row["owner_id"], fields, row["clocks"],  # fresh dicts from jsonb
        body_state=row.get("body_state"), body=row.get("body") or "",
        state_loaded=row.get("state_loaded", True),
        word_count=row["word_count"], milestones=row.get("milestones") or {},
        writers=row.get("writers") or {},
        version=row["version"], created_at=row.get("created_at"),
        updated_at=row.get("updated_at"),
    )
    if kind == "note":
        ent.loaded = _as_saved(ent)
    return ent


def _searched(e: Entity) -> tuple[Any, ...]:
    """The note fields its search vector is made of, besides the body (schema.sql)."""
    f = e.fields
    return f["title"], f["tags"], f["project_id"]


def _as_saved(e: Entity) -> tuple[Any, ...]:
    return (*_searched(e), e.body, e.body_state)


async def lock_entities(conn: Conn, ids: Iterable[UUID], with_state: Iterable[UUID] = (),
                        locked: dict[UUID, Entity] | None = None,
                        share_projects: bool = False) -> dict[UUID, Entity]:
    """Lock and load the given notes, then every project they or `ids` refer to. Only the
    notes in `with_state` come with their document: it can be megabytes, and a batch of
    field writes has no use for it. `locked`: entities the caller has already locked and
    loaded (with their documents), used as they are. `share_projects`: the batch cannot
    change a project, so its projects are locked FOR SHARE: membership still cannot change
    under it, and such batches on one project's notes no longer queue on its row."""
    # Rows are locked in the order of the statements' ORDER BY; the ids go unsorted (a
    # sort of a thousand UUIDs compares them in Python).
    asked = set(ids)
    found = dict(locked or {})
    todo = asked.difference(found)
    if todo:
        cur = await conn.execute(
            f"SELECT {_NOTE_LOCK_SELECT} FROM notes WHERE id = ANY(%(ids)s::uuid[])"
            " ORDER BY id FOR UPDATE",
            {"ids": _uuid_array(todo), "state": _uuid_array(set(with_state))})
        for r in await cur.fetchall():
            r.update(zip(_MAPS, r.pop("maps"), strict=True))
            found[r["id"]] = entity_from_row("note", r)
    # Ids that are no note may be projects; so are the projects of the notes.
    pids = asked.difference(found)
    pids.update(e.project_id for e in found.values() if e.entity == "note" and e.project_id)
    pids.difference_update(found)
    if pids:
        cur = await conn.execute(
            f"SELECT {PROJECT_SELECT} FROM projects WHERE id = ANY(%s::uuid[]) ORDER BY id"
            f" FOR {'SHARE' if share_projects else 'UPDATE'}", (_uuid_array(pids),))
        found.update({r["id"]: entity_from_row("project", r) for r in await cur.fetchall()})
    return found


async def lock_settings(conn: Conn, users: Iterable[UUID]) -> dict[UUID, Entity]:
    """Lock and load users' settings (after projects, before the log heads: lock order)."""
    cur = await conn.execute(
        f"SELECT {SETTINGS_SELECT} FROM settings WHERE user_id = ANY(%s::uuid[])"
        " ORDER BY user_id FOR UPDATE", (_uuid_array(set(users)),))
    return {r["id"]: entity_from_row("settings", r) for r in await cur.fetchall()}


def _uuid_array(ids: Iterable[UUID]) -> str:
    """A uuid[] literal: one text parameter, where psycopg would dump a list element-wise.
    Each is its 32 hex digits, which PostgreSQL reads as it reads the hyphenated form
    str() makes in Python, several times slower."""
    return "{" + ",".join([f"{u.int:032x}" for u in ids]) + "}"


async def load_members(conn: Conn, project_ids: Iterable[UUID]) -> Members:
    project_ids = list(project_ids)
    if not project_ids:
        return {}
    cur = await conn.execute(
        "SELECT project_id, user_id, role FROM members WHERE project_id = ANY(%s)",
        (project_ids,),
    )
    members: Members = {}
    for r in await cur.fetchall():
        members.setdefault(r["project_id"], {})[r["user_id"]] = r["role"]
    return members


async def save_entities(conn: Conn, entities: Iterable[Entity]) -> None:
    """Insert the new and update the changed entities: one statement per table and kind."""
    dirty = [e for e in entities if e.dirty]
    for new in (True, False):
        rows = [e for e in dirty if e.entity == "project" and e.is_new == new]
        if rows:
            await _save_projects(conn, rows, new)
    settings = [e for e in dirty if e.entity == "settings"]
    if settings:
        await _save_settings(conn, settings)
    new_notes = [e for e in dirty if e.entity == "note" and e.is_new]
    if new_notes:
        await _insert_notes(conn, new_notes)
    # Updates are grouped by the columns they change, and each SETs only those. PostgreSQL
    # recomputes a generated column only when an UPDATE sets a column it is made of (the
    # search vector: title, tags, project, and the body's words, set with the body), and
    # rewrites a TOASTed value it is sent again: a pinned toggle on a long chapter neither
    # re-parses nor rewrites its body or its vector.
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for e in dirty:
        if e.entity == "note" and not e.is_new:
            changed = _changed_columns(e)
            groups.setdefault(changed, []).append(_update_row(e, changed))
    for changed, updates in groups.items():
        sets = "".join(_SETS[g] for g in changed)
        await conn.execute(
            f"""UPDATE notes n SET {sets} {_SET_DELTA}, updated_at = now()
                FROM {NOTE_ROWS} WHERE n.id = v.id""", (_json.encode(updates).decode(),))
    for e in dirty:  # as saved now, should the same objects be saved again
        e.unsaved.clear()
        if e.entity == "note":
            e.loaded = _as_saved(e)


_json = msgspec.json.Encoder()


# Rows travel as one JSON document read back with jsonb_to_recordset: psycopg dumping a
# dozen Python lists as array parameters cost 40% of the server's CPU on large pushes.
NOTE_ROWS = """(SELECT id, owner_id, project_id, title, tags, pinned, favorite, deleted, body,
                decode(body_state, 'base64') AS body_state, word_count, clocks, version, writers,
                meta
        FROM jsonb_to_recordset(%s::jsonb) AS r(id uuid, owner_id uuid, project_id uuid,
             title text, tags jsonb, pinned bool, favorite bool, deleted bool, body text,
             body_state text, word_count int, clocks jsonb, version bigint, writers jsonb,
             meta jsonb)) AS v"""
_PROJECT_SRC = """(SELECT * FROM jsonb_to_recordset(%s::jsonb) AS r(id uuid, owner_id uuid,
             title text, description text, word_goal int, status text, deleted bool,
             word_count int, milestones jsonb, clocks jsonb, version bigint, writers jsonb,
             deadline date, meta jsonb)) AS v"""


# What a note update SETs besides its cheap fields, by group; a row sends a group's
# columns only when the group is set: a document of megabytes is neither encoded nor sent
# when unchanged.
_SETS = {
    # body_words: the body's search words (schema.sql), parsed here only when the body is set.
    "body": "body = v.body, body_words = note_body_words(v.body), word_count = v.word_count,",
    "doc": "body_state = v.body_state,",
    "searched": "title = v.title, tags = v.tags, project_id = v.project_id,",
}
# The cheap fields and maps, from what a row sends of them: a field only when a write won
# it (else null: the row keeps its value), and the clocks and writers of the fields won,
# merged into the row's (a write only adds or replaces their keys). An offline device's
# title edits then send neither the notes' other fields nor their whole clocks, which
# were most of the statement's JSON.
_SET_DELTA = """pinned = coalesce(v.pinned, n.pinned), favorite = coalesce(v.favorite, n.favorite),
                deleted = coalesce(v.deleted, n.deleted), meta = coalesce(v.meta, n.meta),
                clocks = n.clocks || v.clocks, writers = n.writers || v.writers,
                version = v.version"""
_FLAGS = ("pinned", "favorite", "deleted")


def _update_row(e: Entity, changed: tuple[str, ...]) -> dict[str, Any]:
    """What an UPDATE of the note sends: its id, version, the column groups in `changed`,
    and the fields won since it was loaded (every field, without that record), with their
    clocks and writers."""
    won = e.unsaved if e.loaded is not None else e.clocks.keys() | set(e.fields)
    clocks: dict[str, str] = {}
    writers: dict[str, int] = {}
    row: dict[str, Any] = {"id": e.id, "version": e.version, "clocks": clocks,
                           "writers": writers}
    meta = False
    for name in won:  # one loop: a batch saves a thousand notes
        if name in e.clocks:
            clocks[name] = e.clocks[name]
        if name in e.writers:
            writers[name] = e.writers[name]
        if name in _FLAGS:
            row[name] = e.fields[name]
        meta = meta or name.startswith(META)
    if meta:
        row["meta"] = app_values("note", e.fields)
    if "body" in changed:
        row["body"], row["word_count"] = e.body, e.word_count
    if "doc" in changed:
        row["body_state"] = e.body_state
    if "searched" in changed:
        row["title"], row["tags"], row["project_id"] = _searched(e)
    return row


def _changed_columns(e: Entity) -> tuple[str, ...]:
    """Which of the costly column groups (_SETS) a batch may have changed in a note."""
    if e.loaded is None:
        return tuple(_SETS)
    *searched, body, body_state = e.loaded
    body_changed = e.state_loaded and e.body != body
    return ((("body",) if body_changed else ())
            + (("doc",) if e.state_loaded and e.body_state != body_state else ())
            + (("searched",) if body_changed or list(_searched(e)) != searched else ()))


def note_row(e: Entity) -> dict[str, Any]:
    """A note as its projection row holds it (all but the timestamps, set by the save)."""
    return {
        "id": e.id, "owner_id": e.owner_id, "project_id": e.fields["project_id"],
        "title": e.fields["title"], "tags": e.fields["tags"], "pinned": e.fields["pinned"],
        "favorite": e.fields["favorite"], "deleted": e.fields["deleted"], "body": e.body,
        "body_state": e.body_state, "word_count": e.word_count, "clocks": e.clocks,
        "version": e.version, "writers": e.writers, "meta": app_values("note", e.fields)}


async def _insert_notes(conn: Conn, rows: list[Entity]) -> None:
    await conn.execute(
        f"""INSERT INTO notes (id, owner_id, project_id, title, tags, pinned, favorite,
            deleted, body, body_state, word_count, clocks, version, writers, meta)
            SELECT * FROM {NOTE_ROWS}""", (_json.encode([note_row(e) for e in rows]).decode(),))


async def _save_projects(conn: Conn, rows: list[Entity], new: bool) -> None:
    doc = _json.encode([{
        "id": e.id, "owner_id": e.owner_id, "title": e.fields["title"],
        "description": e.fields["description"], "word_goal": e.fields["word_goal"],
        "status": e.fields["status"], "deleted": e.fields["deleted"],
        "word_count": e.word_count, "milestones": e.milestones, "clocks": e.clocks,
        "version": e.version, "writers": e.writers, "deadline": e.fields["deadline"],
        "meta": app_values("project", e.fields)} for e in rows]).decode()
    if new:
        await conn.execute(
            f"""INSERT INTO projects (id, owner_id, title, description, word_goal, status,
                deleted, word_count, milestones, clocks, version, writers, deadline, meta)
                SELECT * FROM {_PROJECT_SRC}""", (doc,))
    else:
        await conn.execute(
            f"""UPDATE projects p SET title = v.title, description = v.description,
                word_goal = v.word_goal, status = v.status, deleted = v.deleted,
                word_count = v.word_count, milestones = v.milestones, clocks = v.clocks,
                version = v.version, writers = v.writers, deadline = v.deadline,
                meta = v.meta, updated_at = now()
                FROM {_PROJECT_SRC} WHERE p.id = v.id""", (doc,))


async def _save_settings(conn: Conn, rows: list[Entity]) -> None:
    doc = _json.encode([{
        "user_id": e.id, "fields": app_values("settings", e.fields), "clocks": e.clocks,
        "version": e.version, "writers": e.writers} for e in rows]).decode()
    await conn.execute(
        """INSERT INTO settings (user_id, fields, clocks, version, writers)
           SELECT * FROM jsonb_to_recordset(%s::jsonb) AS r(user_id uuid, fields jsonb,
                clocks jsonb, version bigint, writers jsonb)
           ON CONFLICT (user_id) DO UPDATE SET fields = excluded.fields,
                clocks = excluded.clocks, version = excluded.version,
                writers = excluded.writers, updated_at = now()""", (doc,))


async def add_members(conn: Conn, rows: list[tuple[UUID, UUID, str]]) -> None:
    if rows:
        await conn.execute(
            """INSERT INTO members (project_id, user_id, role)
               SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::text[])
               ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role""",
            ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
        )


async def load_writers(conn: Conn, user: UUID, entities: dict[UUID, Entity],
                       ops: Iterable[Op]) -> dict[int, Writer]:
    """Where, in the user's own log, the current values that ops carrying `base` meet were
    written: one query for the whole batch.

    Called with the entities locked: every event that wrote their current values was
    committed before the lock was granted, so it sits at or below the log's head read
    now. An op whose base is at or past that head (a device that had pulled everything
    when it made its edits) meets no unseen write, and its writers are not looked up."""
    based = [op for op in ops if op.base is not None and op.id in entities]
    if not based:
        return {}
    head = await log.head(conn, user)
    wanted: dict[int, UUID] = {}
    since = head
    for op in based:
        if op.base is None or op.base >= head:
            continue
        since = min(since, op.base)
        ent = entities[op.id]
        for name in (op.fields or {}) if op.kind == "set" else ("deleted",):
            if name in ent.writers:
                wanted[ent.writers[name]] = ent.id
    if not wanted:
        return {}
    op_ids = sorted(wanted)
    id_array = "{" + ",".join(map(str, op_ids)) + "}"
    if head - since <= _SCAN_PER_WRITER * len(wanted):
        # A writer at or below every op's base is no conflict, so only the events past
        # the lowest base can matter; when they are few (a device pushing the edits it
        # queued since its last pull, in batches), reading them in seq order beats a
        # random index probe per writer.
        cur = await conn.execute(
            """SELECT op_id, seq, device_id, author_id FROM events
               WHERE user_id = %s AND seq > %s AND op_id = ANY(%s::bigint[])""",
            (user, since, id_array))
    else:
        # One index probe per (entity, op id) pair: `entity_id = ANY(…) AND op_id =
        # ANY(…)` probed every combination of the two arrays, a million for 1000 ops.
        cur = await conn.execute(
            """SELECT e.op_id, e.seq, e.device_id, e.author_id
               FROM unnest(%s::uuid[], %s::bigint[]) AS w(entity_id, op_id)
               JOIN events e ON e.entity_id = w.entity_id AND e.op_id = w.op_id
               WHERE e.user_id = %s""",
            (_uuid_array(wanted[i] for i in op_ids), id_array, user))
    return {r["op_id"]: Writer(r["seq"], r["device_id"], r["author_id"])
            for r in await cur.fetchall()}


# Events read in seq order cost about a tenth of a probe of the (entity_id, op_id) index.
_SCAN_PER_WRITER = 10


async def add_conflicts(conn: Conn, user: UUID, conflicts: list[dict[str, Any]]) -> None:
    if conflicts:
        await conn.execute(
            """INSERT INTO conflicts (id, user_id, entity, entity_id, field, mine, theirs, winner)
               SELECT c.id, %s, c.entity, c.entity_id, c.field, c.mine, c.theirs, c.winner
               FROM jsonb_to_recordset(%s::jsonb) AS c(id uuid, entity text, entity_id uuid,
                    field text, mine jsonb, theirs jsonb, winner text)""",
            (user, _json.encode(conflicts).decode()))


# words_written (words.py): a tally added in one statement.
UPSERT_WORDS = """INSERT INTO words_written (user_id, note_id, quarter, words)
            SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::timestamptz[], %s::int[])
            ON CONFLICT (user_id, note_id, quarter)
            DO UPDATE SET words = words_written.words + excluded.words"""


def words_params(tally: Tally) -> tuple[list[Any], ...]:
    """The arrays UPSERT_WORDS takes: one round trip for a whole batch."""
    keys = sorted(tally)
    return ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
            [tally[k] for k in keys])


async def record_words(conn: Conn, tally: Tally) -> None:
    if tally:
        await conn.execute(UPSERT_WORDS, words_params(tally))
