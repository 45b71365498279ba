"""Pure merge: an entity's state, last-writer-wins fields by HLC, and CRDT text via pycrdt.

No I/O here. The live push path, the REST writes and `syncd rebuild` all apply ops
through these functions, so the projection is the same function of the log everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from pycrdt import Doc, Text

from syncd.config import MAX_DOC_BYTES
from syncd.errors import OpRejected
from syncd.fields import DEFAULTS

BODY = "body"


def word_count(text: str) -> int:
    return len(text.split())


@dataclass
class Entity:
    """A note or project as the projection holds it, plus what a batch needs to track."""

    entity: str
    id: UUID
    owner_id: UUID
    fields: dict[str, Any]
    clocks: dict[str, str] = field(default_factory=dict)
    body_state: bytes | None = None
    body: str = ""
    word_count: int = 0
    milestones: dict[str, Any] = field(default_factory=dict)
    writers: dict[str, int] = field(default_factory=dict)  # field → op id of its value
    # False when a batch loaded the note without its document (body, body_state): it then
    # may not touch the text, and its save leaves those columns as they are.
    state_loaded: bool = True
    version: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # Batch bookkeeping, not persisted as such.
    is_new: bool = False
    dirty: bool = False
    doc: Doc[Any] | None = None
    doc_bytes: int = 0
    applied_updates: list[bytes] = field(default_factory=list)

    @classmethod
    def new(cls, entity: str, id: UUID, owner_id: UUID) -> Entity:
        return cls(entity, id, owner_id, dict(DEFAULTS[entity]), is_new=True)

    @property
    def deleted(self) -> bool:
        return bool(self.fields.get("deleted"))

    @property
    def project_id(self) -> UUID | None:
        pid = self.fields.get("project_id")
        return UUID(pid) if pid else None

    def flush_text(self) -> None:
        """Fold the live document back into body_state (once per batch, not per op)."""
        if self.doc is not None:
            self.body_state = self.doc.get_update()


def apply_fields(ent: Entity, fields: dict[str, Any], hlc: str) -> dict[str, Any]:
    """LWW per field: a value wins when its clock is greater. Returns the fields that won."""
    won = {}
    for name, value in fields.items():
        if hlc > ent.clocks.get(name, ""):
            ent.fields[name] = value
            ent.clocks[name] = hlc
            won[name] = value
    if won:
        ent.dirty = True
    return won


def _load_doc(ent: Entity) -> Doc[Any]:
    if ent.doc is None:
        doc: Doc[Any] = Doc()
        doc.get(BODY, type=Text)
        if ent.body_state:
            doc.apply_update(ent.body_state)
        for update in ent.applied_updates:
            doc.apply_update(update)
        ent.doc = doc
        ent.doc_bytes = len(ent.body_state or b"") + sum(map(len, ent.applied_updates))
    return ent.doc


def check_update(update: bytes) -> None:
    """Refuse bytes that are not a Yjs v1 update, before they touch a real document."""
    scratch: Doc[Any] = Doc()
    try:
        scratch.apply_update(update)
        scratch.get(BODY, type=Text)
    # pycrdt surfaces Rust panics as pyo3 PanicException, a BaseException: untrusted input.
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt | SystemExit):
            raise
        raise OpRejected("validation", "not a valid Yjs update for a text body") from None


def apply_text(ent: Entity, update: bytes) -> bool:
    """Merge a Yjs update into the body. Returns whether the plain text changed."""
    if not ent.state_loaded:
        raise RuntimeError(f"note {ent.id} was loaded without its document")
    check_update(update)
    if ent.doc_bytes + len(update) > MAX_DOC_BYTES and ent.body_state is not None:
        raise OpRejected("validation", f"document would exceed {MAX_DOC_BYTES} bytes")
    doc = _load_doc(ent)
    try:
        doc.apply_update(update)
        text = str(doc.get(BODY, type=Text))
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt | SystemExit):
            raise
        ent.doc = None  # the live doc may be half-applied: rebuilt from good updates on next use
        raise OpRejected("validation", "the Yjs update does not apply to this body") from None
    if "\x00" in text:  # PostgreSQL text cannot hold NUL; refuse it like a bad update
        ent.doc = None
        raise OpRejected("validation", "the body must not contain NUL characters")
    ent.doc_bytes += len(update)
    ent.applied_updates.append(update)
    ent.dirty = True
    changed = text != ent.body
    ent.body = text
    ent.word_count = word_count(text)
    return changed


def text_from_state(state: bytes | None) -> str:
    if not state:
        return ""
    doc: Doc[Any] = Doc()
    text = doc.get(BODY, type=Text)
    doc.apply_update(state)
    return str(text)
