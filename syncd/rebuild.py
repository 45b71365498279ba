"""Rebuild the projection from the log alone, and verify the live one against it.

The replay folds the log through the live path's rules (projection.py, merge.py, words.py).
Every op is copied into the log of each user who could see it; copies share an op id, so
the replay reads each op once, in op-id order. LWW and CRDT merges commute, so that order
is not load-bearing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from syncd.fields import NOTE_COLS, PROJECT_COLS, app_values
from syncd.log import iso
from syncd.merge import Entity, apply_fields, apply_texts
from syncd.projection import SOURCE_KINDS, field_changes, record, settle_words
from syncd.store import SETTINGS_SELECT, UPSERT_WORDS, entity_from_row, words_params
from syncd.words import Runs, Tally, new_tally, quarter

HELD_TEXT_OPS = 2000  # a note's text ops held before they are applied: bounds the memory


@dataclass
class Rebuilt:
    entities: dict[UUID, Entity] = field(default_factory=dict)  # notes and projects
    # Settings apart: their id is their user's, and a note or project may carry any id a
    # device chose, a user's id included.
    settings: dict[UUID, Entity] = field(default_factory=dict)
    words: Tally = field(default_factory=new_tally)
    ops: int = 0


def replay(rows: Iterator[dict[str, Any]], on_row: Callable[[], None] | None = None,
           count_words: bool = True) -> Rebuilt:
    """Fold source events (one row per op, ascending op id) into entities. Pure.

    A note's text ops are applied after the loop, each run of them by one author in one
    quarter hour at once (merge.apply_texts), and the note's words counted after each run
    (what the run's ops wrote, summed, is the count after it minus the count before):
    reading the text after every op cost a long note's length times its edits.
    `count_words=False` (a past state, history.py) does not count."""
    out = Rebuilt()
    runs = Runs() if count_words else None
    texts: dict[UUID, list[tuple[UUID, datetime | None, bytes]]] = {}
    for r in rows:
        if on_row:
            on_row()
        table = out.settings if r["entity"] == "settings" else out.entities
        ent = table.get(r["entity_id"])
        if ent is None:
            ent = Entity.new(r["entity"], r["entity_id"], r["author_id"])
            ent.created_at = r["at"]
            table[ent.id] = ent
        kind = r["kind"]
        if kind == "text":
            when = quarter(r["hlc"], r["at"]) if count_words else None
            pending = texts.setdefault(ent.id, [])
            pending.append((r["author_id"], when, r["data"]))
            if len(pending) >= HELD_TEXT_OPS:
                _fold_texts(ent, pending, runs)
                pending.clear()
            record(ent, r["op_id"])
        else:
            record(ent, r["op_id"], apply_fields(ent, field_changes(kind, r["fields"]), r["hlc"]))
        ent.updated_at = r["at"]
        out.ops += 1
    for id, pending in texts.items():
        _fold_texts(out.entities[id], pending, runs)
    if runs is not None:
        runs.end_all(out.entities)
        out.words = runs.tally
    notes = [e for e in out.entities.values() if e.entity == "note"]
    settle_words(out.entities, notes, {})  # every note counts from nothing: the sum
    for ent in notes:
        ent.applied_updates.clear()
    return out


def _fold_texts(ent: Entity, ops: list[tuple[UUID, datetime | None, bytes]],
                runs: Runs | None) -> None:
    """Apply a note's pending text ops (author, quarter or None, update), by runs."""
    for (author, when), run in groupby(ops, lambda op: (op[0], op[1])):
        if runs is not None and when is not None:
            runs.start(ent, author, when)
        apply_texts(ent, [data for _, _, data in run])


def _source_rows(conn: psycopg.Connection[Any]) -> Iterator[dict[str, Any]]:
    with conn.cursor(name="syncd_rebuild", row_factory=dict_row) as cur:
        cur.itersize = 2000
        cur.execute(
            """SELECT DISTINCT ON (e.op_id) e.op_id, e.entity, e.entity_id, e.kind, e.fields,
                      e.hlc, e.author_id, e.at, p.data
               FROM events e LEFT JOIN payloads p ON e.has_payload AND p.op_id = e.op_id
               WHERE e.kind = ANY(%s) ORDER BY e.op_id""", (list(SOURCE_KINDS),))
        yield from cur


def count_ops(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(DISTINCT op_id) FROM events WHERE kind = ANY(%s)",
                       (list(SOURCE_KINDS),)).fetchone()
    return int(row[0]) if row else 0


def rebuild_from_log(conn: psycopg.Connection[Any],
                     on_row: Callable[[], None] | None = None) -> Rebuilt:
    rebuilt = replay(_source_rows(conn), on_row)
    # Milestones are facts of the log: the owner's copy of each milestone event.
    cur = conn.cursor(row_factory=dict_row)
    cur.execute("""SELECT e.entity_id, e.fields, e.seq, e.at FROM events e
                   JOIN projects p ON p.id = e.entity_id AND p.owner_id = e.user_id
                   WHERE e.kind = 'milestone'""")
    for r in cur:
        project = rebuilt.entities.get(r["entity_id"])
        if project is not None:
            project.milestones[str(r["fields"]["milestone"])] = {"seq": r["seq"],
                                                                 "at": iso(r["at"])}
    # A deleted account's edits stay in others' logs under a placeholder author; no user
    # is left to count them for.
    users = {r[0] for r in conn.execute("SELECT id FROM users")}
    for key in [k for k in rebuilt.words if k[0] not in users]:
        del rebuilt.words[key]
    return rebuilt


def _comparable(ent: Entity) -> dict[str, Any]:
    if ent.entity == "settings":
        return {"values": app_values("settings", ent.fields), "clocks": ent.clocks,
                "version": ent.version, "writers": ent.writers}
    cols = NOTE_COLS if ent.entity == "note" else PROJECT_COLS
    out: dict[str, Any] = {c: ent.fields.get(c) for c in cols}
    out.update(owner_id=ent.owner_id, clocks=ent.clocks, word_count=ent.word_count,
               version=ent.version, created_at=ent.created_at, writers=ent.writers,
               meta=app_values(ent.entity, ent.fields))
    if ent.entity == "note":
        out.update(body=ent.body, updated_at=ent.updated_at)
    else:
        out["milestones"] = {k: v.get("seq") for k, v in ent.milestones.items()}
    return out


def differences(conn: psycopg.Connection[Any], rebuilt: Rebuilt) -> list[str]:
    """Compare the live projection with the rebuilt one; one line per difference."""
    diffs: list[str] = []
    live: dict[UUID, Entity] = {}
    for table, kind in (("notes", "note"), ("projects", "project")):
        for row in conn.cursor(row_factory=dict_row).execute(f"SELECT * FROM {table}"):
            live[row["id"]] = entity_from_row(kind, row)
    settings = {row["id"]: entity_from_row("settings", row) for row in conn.cursor(
        row_factory=dict_row).execute(f"SELECT {SETTINGS_SELECT} FROM settings")}
    for have, want in ((live, rebuilt.entities), (settings, rebuilt.settings)):
        for eid in sorted(set(have) | set(want)):
            a, b = have.get(eid), want.get(eid)
            if a is None or b is None:
                where = "missing from the projection" if a is None else "not in the log"
                diffs.append(f"{eid}: {where}")
                continue
            ca, cb = _comparable(a), _comparable(b)
            for key in ca:
                if ca[key] != cb[key]:
                    diffs.append(f"{a.entity} {eid}: {key} is {ca[key]!r}, "
                                 f"the log says {cb[key]!r}")
    live_words = {(r[0], r[1], r[2]): r[3] for r in conn.execute(
        "SELECT user_id, note_id, quarter, words FROM words_written")}
    for user, note, when in sorted(set(live_words) | set(rebuilt.words)):
        a_words = live_words.get((user, note, when), 0)  # a row may sum to 0 or be absent
        b_words = rebuilt.words.get((user, note, when), 0)
        if a_words != b_words:
            diffs.append(f"words_written of user {user}, note {note}, {when.isoformat()}: "
                         f"{a_words!r}, the log says {b_words!r}")
    return diffs


def write_words(conn: psycopg.Connection[Any], rebuilt: Rebuilt) -> None:
    conn.execute("DELETE FROM words_written")
    conn.execute(UPSERT_WORDS, words_params(rebuilt.words))


def write_projection(conn: psycopg.Connection[Any], rebuilt: Rebuilt) -> None:
    """Replace notes, projects, settings and words_written with the rebuilt rows (one
    transaction, the caller's)."""
    from psycopg.types.json import Jsonb

    conn.execute("DELETE FROM notes")
    conn.execute("DELETE FROM projects")
    conn.execute("DELETE FROM settings")
    write_words(conn, rebuilt)
    notes = [e for e in rebuilt.entities.values() if e.entity == "note"]
    projects = [e for e in rebuilt.entities.values() if e.entity == "project"]
    settings = list(rebuilt.settings.values())
    with conn.cursor() as cur:
        cur.executemany(
                    """INSERT INTO notes (id, owner_id, project_id, title, tags, pinned, favorite,
                       deleted, body, body_state, word_count, clocks, version, created_at,
                       updated_at, writers, meta)
                       VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)""",
                    [(e.id, e.owner_id, f["project_id"], f["title"], Jsonb(f["tags"]),
                      f["pinned"], f["favorite"], f["deleted"], e.body, e.body_state,
                      e.word_count, Jsonb(e.clocks), e.version, e.created_at, e.updated_at,
                      Jsonb(e.writers), Jsonb(app_values("note", f)))
                     for e in notes for f in [e.fields]])
        cur.executemany(
                    """INSERT INTO projects (id, owner_id, title, description, word_goal, status,
                       deleted, word_count, milestones, clocks, version, created_at, updated_at,
                       writers, deadline, meta)
                       VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)""",
                    [(e.id, e.owner_id, f["title"], f["description"], f["word_goal"],
                      f["status"], f["deleted"], e.word_count, Jsonb(e.milestones),
                      Jsonb(e.clocks), e.version, e.created_at, e.updated_at, Jsonb(e.writers),
                      f["deadline"], Jsonb(app_values("project", f)))
                     for e in projects for f in [e.fields]])
        cur.executemany(
                    """INSERT INTO settings (user_id, fields, clocks, version, writers,
                       created_at, updated_at) VALUES (%s,%s,%s,%s,%s,%s,%s)""",
                    [(e.id, Jsonb(app_values("settings", e.fields)), Jsonb(e.clocks),
                      e.version, Jsonb(e.writers), e.created_at, e.updated_at)
                     for e in settings])
