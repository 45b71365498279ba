"""Pure merge: an entity's state, last-writer-wins fields by HLC, and CRDT text via pycrdt.

No I/O here. The live push path, the REST writes and `syncd rebuild` all apply ops
through these functions, so the projection is the same function of the log everywhere.

Text updates may arrive before an update they build on (a device that synced with
another one directly, a collaborator's edit relayed out of order). Yjs parks such items
until their dependencies come, but yrs (pycrdt 0.14) can lose parked items when the
missing update arrives, and never encodes them in `get_update()`. So once an update is
left waiting, the note's document is kept as the merge of every update received
(`Entity.whole`, which `merge_updates` makes independent of order), and each later update
rebuilds the document from that merge in one application, in which yrs orders the items
itself. The stored state is that merge too, so nothing waiting is lost between batches.
Deletions of items not received yet wait the same way.

So an update is refused from its own bytes when it arrives (`check_update`: not an
update, outside the body, NUL), never when it is integrated: one that waited would
otherwise be refused only when what it builds on arrives, and take that down with it.
The size limit holds per document (`check_growth`), measured only near it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from pycrdt import Doc, Text, get_update, merge_updates

from syncd.errors import OpRejected
from syncd.fields import DEFAULTS
from syncd.limits import MAX_DOC_BYTES
from syncd.yupdate import MalformedUpdate, Writes, read_update

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
    # Set while some received item waits for another: every update received, merged.
    whole: bytes | None = None
    doc_bytes: int = 0
    applied_updates: list[bytes] = field(default_factory=list)
    text_stale: bool = False  # body and word_count lag the document (read_text)
    # A note's searched fields (title, tags, project), body and document as loaded, so a
    # save can leave alone the columns a batch did not change (store.save_entities).
    loaded: tuple[Any, ...] | None = None
    # The fields a write won since the entity was loaded or saved: only their values,
    # clocks and writers change (apply_fields, projection.record), so a save sends those.
    unsaved: set[str] = field(default_factory=set)

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

    def document_state(self) -> bytes | None:
        """The document as one update, with any items still waiting for another."""
        if self.doc is None and self.applied_updates:
            _load_doc(self)  # dropped by a refused op: rebuilt from the applied updates
        if self.whole is not None:
            return self.whole
        return self.doc.get_update() if self.doc is not None else self.body_state

    def flush_text(self) -> None:
        """Fold the live document back into body_state and read its text (once per batch,
        not per op)."""
        if self.doc is not None or self.text_stale:
            read_text(self)  # rebuilds a document a refused op dropped
            self.body_state = self.document_state()


def apply_fields(ent: Entity, fields: dict[str, Any], hlc: str) -> dict[str, Any]:
    """LWW per field: a value wins when its clock is greater. Returns the fields that won."""
    won = {}
    for name, value in fields.items():
        if hlc > ent.clocks.get(name, ""):
            ent.fields[name] = value
            ent.clocks[name] = hlc
            ent.unsaved.add(name)
            won[name] = value
    if won:
        ent.dirty = True
    return won


def _load_doc(ent: Entity) -> Doc[Any]:
    if ent.doc is None:
        parts = ([ent.body_state] if ent.body_state else []) + ent.applied_updates
        _rebuild(ent, parts[0] if len(parts) == 1 else merge_updates(*parts) if parts else None)
        ent.doc_bytes = sum(map(len, parts))
    assert ent.doc is not None
    return ent.doc


def _rebuild(ent: Entity, state: bytes | None) -> None:
    """A fresh document from one update; `whole` keeps it if some item in it still waits.
    A batch planned in a thread (offload.py) leaves it to be encoded on the loop's: without
    `allow_multithreading`, pycrdt objects panic when used from a thread not their own."""
    doc: Doc[Any] = Doc(allow_multithreading=True)
    ent.whole = None
    if state:
        doc.apply_update(state)
        # A state the document encodes back to byte for byte holds nothing waiting: a
        # quicker test (an encode) than _waiting (a decode and a parse) for the usual case.
        if doc.get_update() != state and _waiting(state, doc):
            ent.whole = state
    ent.doc = doc


def _waiting(update: bytes, doc: Doc[Any]) -> bool:
    """Whether some item of `update` is not in `doc`, or some deletion names an item the
    document does not have: either waits for an update it builds on."""
    state = doc.get_state()
    rest = get_update(update, state)  # the structs past the state vector, and the deletions
    if rest[:1] != b"\x00":  # a struct count that is not 0
        return True
    return not _covered(_ranges(rest, 1), dict(_pairs(state)))


def _covered(deletions: Iterator[tuple[int, int, int]], state: dict[int, int]) -> bool:
    return all(clock + length <= state.get(client, 0) for client, clock, length in deletions)


def _varuint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _pairs(state_vector: bytes) -> Iterator[tuple[int, int]]:
    """(client, clock) of a Yjs state vector."""
    count, pos = _varuint(state_vector, 0)
    for _ in range(count):
        client, pos = _varuint(state_vector, pos)
        clock, pos = _varuint(state_vector, pos)
        yield client, clock


def _ranges(buf: bytes, pos: int) -> Iterator[tuple[int, int, int]]:
    """(client, clock, length) of a Yjs v1 delete set starting at pos."""
    clients, pos = _varuint(buf, pos)
    for _ in range(clients):
        client, pos = _varuint(buf, pos)
        n, pos = _varuint(buf, pos)
        for _ in range(n):
            clock, pos = _varuint(buf, pos)
            length, pos = _varuint(buf, pos)
            yield client, clock, length


def check_update(update: bytes) -> Writes:
    """Refuse a text update from its own bytes, before it touches a document: one that is
    not a Yjs v1 update (`validation`), writes outside the note's `body` Text (another
    root, a nested type or subdocument: `outside_body`), or inserts NUL, which PostgreSQL
    text cannot hold (`validation`). Decided here, never when the update is integrated: an
    update that waits for another would otherwise be refused when that one arrives, and
    take it down with it. Pure, linear in the update's size."""
    try:
        writes = read_update(update)
    except MalformedUpdate:
        raise OpRejected("validation", "not a valid Yjs update for a text body") from None
    if writes.nested or writes.roots - {BODY}:
        where = ", ".join(sorted(writes.roots - {BODY})) or "a nested type"
        raise OpRejected("outside_body",
                         f"a text update may only write the note's Y.Text {BODY!r}, not {where}")
    if writes.nul:
        raise OpRejected("validation", "the body must not contain NUL characters")
    return writes


def check_applies(update: bytes) -> None:
    """Refuse an update yrs fails to apply, tried on a scratch document: for a document
    others share live (a collab room), which a failed application would leave half
    applied. A note's document in a batch is rebuilt instead (apply_text), so pushes skip
    this (a scratch document per op was most of a 1000-op push's time). A fresh document
    integrates only what starts at a client's clock 0, the rest waiting for the clocks
    before it: callers skip the trial when nothing does (`Writes.from_zero`), as for every
    keystroke after a client's first."""
    scratch: Doc[Any] = Doc()
    try:
        scratch.apply_update(update)
        scratch.get(BODY, type=Text)
    # pycrdt surfaces Rust panics as pyo3 PanicException, a BaseException: untrusted input.
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt | SystemExit):
            raise
        raise OpRejected("validation", "not a valid Yjs update for a text body") from None


def check_growth(before: int, after: int) -> None:
    """Refuse a change that takes a document's encoded state past MAX_DOC_BYTES (a
    document already past it, from before the limit held per document, may still shrink)."""
    if after > MAX_DOC_BYTES and after > before:
        raise OpRejected("too_large", f"the document would exceed {MAX_DOC_BYTES} bytes")


def apply_text(ent: Entity, update: bytes, *, bounded: bool = True) -> None:
    """Merge a Yjs update into the body. The text is read later, once (read_text): reading
    it after every op made a 1000-op push to a 300 kB note take 2.2 s. `bounded`: refuse
    growth past MAX_DOC_BYTES (a collab room's write-behind was measured by the room)."""
    if not ent.state_loaded:
        raise RuntimeError(f"note {ent.id} was loaded without its document")
    check_update(update)
    _load_doc(ent)
    # doc_bytes bounds the state's size from above (the updates' sizes add up to more than
    # their merge); only past the limit is the state encoded to measure it.
    near = bounded and ent.doc_bytes + len(update) > MAX_DOC_BYTES
    before = _state_size(ent) if near else 0
    try:
        _integrate(ent, update)
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt | SystemExit):
            raise
        _drop(ent)  # it may be half applied
        raise OpRejected("validation", "the Yjs update does not apply to this body") from None
    size = None
    if near:
        size = _state_size(ent)
        try:
            check_growth(before, size)
        except OpRejected:
            _drop(ent)
            raise
    _accepted(ent, [update], size)


def apply_text_run(ent: Entity, updates: list[bytes]) -> bool:
    """Apply updates that each passed check_update in one pycrdt transaction, or none.

    yrs's commit costs the document's length when an update extends a long text (it
    squashes the new item into the old one): 1000 one-word updates to a 1.5 MB note took
    0.37 s one transaction each, 8 ms in one. False, with the entity as it was, when the
    document may grow past its limit, an update does not apply or would wait for another:
    the caller then applies them one by one, which names the op to refuse."""
    if not ent.state_loaded:
        raise RuntimeError(f"note {ent.id} was loaded without its document")
    doc = _load_doc(ent)
    if ent.whole is not None or ent.doc_bytes + sum(map(len, updates)) > MAX_DOC_BYTES:
        return False
    try:
        with doc.transaction():
            for update in updates:
                doc.apply_update(update)
        refused = any(_waiting(update, doc) for update in updates)
    except BaseException as e:  # pycrdt raises Rust panics as BaseException
        if isinstance(e, KeyboardInterrupt | SystemExit):
            raise
        refused = True
    if refused:
        _drop(ent)
        return False
    _accepted(ent, updates)
    return True


def _drop(ent: Entity) -> None:
    """Forget a live document that holds a refused update (and `whole`, which may hold it
    too): rebuilt from body_state and the updates applied before it on next use."""
    ent.doc = ent.whole = None


def _state_size(ent: Entity) -> int:
    return len(ent.document_state() or b"")


def _accepted(ent: Entity, updates: list[bytes], size: int | None = None) -> None:
    """Updates now in the live document: saved with the batch, the text read later. `size`
    is the state's measured size, if it was measured."""
    ent.doc_bytes = ent.doc_bytes + sum(map(len, updates)) if size is None else size
    ent.applied_updates += updates
    ent.dirty = True
    ent.text_stale = True


def read_text(ent: Entity) -> None:
    """Bring body and word_count up to date with the document."""
    if ent.text_stale:
        doc = _load_doc(ent)  # dropped by a refused op: rebuilt from the applied updates
        ent.body = str(doc.get(BODY, type=Text))
        ent.word_count = word_count(ent.body)
    ent.text_stale = False


def _integrate(ent: Entity, update: bytes) -> None:
    """Apply an update to the live document (pycrdt errors are the caller's to handle)."""
    doc = _load_doc(ent)
    if ent.whole is not None:
        _rebuild(ent, merge_updates(ent.whole, update))
    else:
        doc.apply_update(update)
        if _waiting(update, doc):  # rebuilt, not kept: yrs now holds parked items
            _rebuild(ent, merge_updates(doc.get_update(), update))


# Updates applied together, merged first. yrs applies 20,000 small updates one by one in
# 0.75 s, and their merge (unsquashed, in one update) in 5.6 s, but merged by 100 in 0.03 s;
# and merge_updates itself grows with the square of how many it is given.
MERGE_CHUNK = 100


def chunks(updates: list[bytes]) -> Iterator[bytes]:
    """The updates merged by MERGE_CHUNK, in order."""
    for i in range(0, len(updates), MERGE_CHUNK):
        part = updates[i:i + MERGE_CHUNK]
        yield part[0] if len(part) == 1 else merge_updates(*part)


def apply_texts(ent: Entity, updates: list[bytes]) -> None:
    """Merge many updates the log has already accepted at once, reading the text once:
    applied one by one (apply_text), each op re-reads the whole text."""
    try:
        for part in chunks(updates):
            _integrate(ent, part)
        assert ent.doc is not None
        text = str(ent.doc.get(BODY, type=Text))
    except BaseException as e:  # pycrdt raises Rust panics as BaseException
        if isinstance(e, KeyboardInterrupt | SystemExit):
            raise
        ent.doc = ent.whole = None
        raise OpRejected("validation", "a stored text update does not apply") from None
    ent.doc_bytes += sum(map(len, updates))
    ent.body = text
    ent.word_count = word_count(text)
    ent.text_stale = False
    ent.dirty = True


def text_from_state(state: bytes | None) -> str:
    if not state:
        return ""
    doc: Doc[Any] = Doc()
    text = doc.get(BODY, type=Text)
    doc.apply_update(state)
    return str(text)


def merge_all(updates: list[bytes]) -> bytes:
    """The updates merged into one, MERGE_CHUNK at a time: merge_updates over a whole
    backlog (50,000 keystrokes) costs the square of its length; by chunks, rounds of
    bounded merges."""
    while len(updates) > 1:
        updates = list(chunks(updates))
    return updates[0] if updates else b"\x00\x00"
