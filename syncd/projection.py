"""Projection rules: how an op the log holds changes the projection. Pure.

The live path (plan.Batch, then sync.apply_ops once op ids exist) and `syncd rebuild`
(rebuild.replay) fold ops into entities through these rules and merge.py's, so the
projection is one function of the log whichever of them made it:

- `set`, `delete` and `restore` are LWW writes of fields (merge.apply_fields); the last
  two write `deleted`. A `text` op merges into the note's document (merge.py).
- The newest op on an entity is its version; the op whose value a field holds is that
  field's writer.
- A note's words count towards its project unless it is deleted: a project's word count
  is the sum over its live notes.
- What each run of text ops wrote counts for its author and quarter hour (words.Runs).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from syncd.merge import Entity

# The ops that change entities; the log's other events (put, revoke, member, milestone,
# conflict) tell devices about them.
SOURCE_KINDS = ("set", "text", "delete", "restore")


def field_changes(kind: str, fields: dict[str, Any] | None) -> dict[str, Any]:
    """The LWW field writes of a set, delete or restore op."""
    return dict(fields or {}) if kind == "set" else {"deleted": kind == "delete"}


def record(ent: Entity, op_id: int, won: Iterable[str] = ()) -> None:
    """An op changed `ent`: it is the entity's version if newest, and the writer of the
    fields whose values it set."""
    ent.version = max(ent.version, op_id)
    for name in won:
        ent.writers[name] = op_id


def contribution(note: Entity) -> tuple[UUID | None, int]:
    """Which project a note's words count towards, and how many (deleted notes count none)."""
    if note.deleted or note.project_id is None:
        return None, 0
    return note.project_id, note.word_count


def settle_words(entities: dict[UUID, Entity], notes: Iterable[Entity],
                 before: dict[UUID, tuple[UUID | None, int]]) -> set[UUID]:
    """Fold each note's document, then move its words from the project it counted towards
    (`before`; absent: none) to the one it counts towards now. Returns the projects whose
    count changed."""
    touched: set[UUID] = set()
    for note in notes:
        note.flush_text()
        old_project, old_words = before.get(note.id, (None, 0))
        new_project, new_words = contribution(note)
        if (old_project, old_words) == (new_project, new_words):
            continue
        for pid, delta in ((old_project, -old_words), (new_project, new_words)):
            project = entities.get(pid) if pid else None
            if project is not None and delta:
                project.word_count += delta
                project.dirty = True
                touched.add(project.id)
    return touched
