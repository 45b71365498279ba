"""The local projection: applying remote events, snapshots and local edits to the store.

Every change goes through `merge.py` (LWW per field by HLC) or through the
note's pycrdt document (text), so applying the same event twice, or an old
event after a newer local edit, changes nothing. Events of this device carry
their `client_seq` and the clock the server's log holds for the op: the op is
settled with it (merge.settle), unless its push result did that already, so the
device's fields and clocks end as the server's projection has them and every
replica orders later writes the same way.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

from pycrdt import Doc, Text

from syncd_client import merge, textdoc
from syncd_client.messages import Event, to_event
from syncd_client.store import Row, Store
from syncd_client.types import META, EntityName, Json, defaults, writable

log = logging.getLogger(__name__)

NOTIFICATION_KINDS = frozenset({"milestone", "member", "conflict"})
_NOT_DERIVED = frozenset({"id", "clocks", "body", "body_state", "deleted", "meta"})


def _entity(name: str) -> EntityName:
    if name == "note":
        return "note"
    if name == "project":
        return "project"
    if name == "settings":
        return "settings"
    raise ValueError(f"unknown entity {name!r}")


def _unfold(values: Json, clocks: dict[str, str], prefix: str) -> Json:
    """A map of an entity view (meta, settings values) as the LWW fields that wrote it: a
    key with a clock but no value was cleared (null)."""
    out: Json = {k: None for k in clocks if k.startswith(prefix)}
    out.update({prefix + k: v for k, v in values.items()})
    return out


def _written(ev: Event) -> Json:
    """The fields a set, delete or restore event writes."""
    if ev.kind == "set":
        return dict(ev.fields or {})
    return {"deleted": ev.kind == "delete"}


def _b64(value: Any) -> bytes | None:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str) and value:
        return base64.b64decode(value)
    return None


class Projection:
    """Owns the note documents in memory and keeps them and the store rows in step."""

    def __init__(self, store: Store, observe_clock: Callable[[str], None]) -> None:
        self.store = store
        self.observe_clock = observe_clock
        self._docs: dict[str, Doc[Text]] = {}

    # --- rows and documents ---------------------------------------------------------------

    def row(self, entity: EntityName, id: str) -> Row | None:
        return self.store.row(entity, id)

    def row_or_new(self, entity: EntityName, id: str) -> Row:
        return self.store.row(entity, id) or Row(entity=entity, id=id)

    def doc(self, row: Row) -> Doc[Text]:
        """The note's document, loaded once per process (one Yjs client id per session)."""
        doc = self._docs.get(row.id)
        if doc is None:
            doc = self._docs[row.id] = textdoc.new_doc(row.body_state)
        return doc

    def save_doc(self, row: Row, doc: Doc[Text]) -> None:
        row.body = textdoc.text_of(doc)
        row.body_state = doc.get_update()
        self.store.save(row)

    def forget(self, entity: EntityName, id: str) -> bool:
        self._docs.pop(id, None)
        return self.store.drop(entity, id)

    # --- local edits ----------------------------------------------------------------------

    def local_set(self, entity: EntityName, id: str, fields: Json, hlc: str) -> Row:
        row = self.row_or_new(entity, id)
        merge.set_own(row, fields, hlc)
        self.store.save(row)
        return row

    def local_text(self, note_id: str, edit: Callable[[Doc[Text]], bytes]) -> bytes:
        """Run an edit on the note's document and persist it; return the update."""
        row = self.row_or_new("note", note_id)
        doc = self.doc(row)
        update = edit(doc)
        if update:
            self.save_doc(row, doc)
        return update

    # --- remote events --------------------------------------------------------------------

    def apply_event(self, raw: Json, device_id: str | None) -> list[str]:
        """Apply one pulled event; return the ids whose local state changed."""
        ev = to_event(raw)
        if ev.hlc:
            self.observe_clock(ev.hlc)
        if ev.kind in NOTIFICATION_KINDS:
            self.store.notify(raw)
            return [ev.id]
        try:
            entity = _entity(ev.entity)
        except ValueError:
            log.warning("ignoring event %s on unknown entity %r", ev.seq, ev.entity)
            return []
        if ev.kind == "revoke":
            return [ev.id] if self.forget(entity, ev.id) else []

        row = self.row_or_new(entity, ev.id)
        clocks_before, fields_before = dict(row.clocks), dict(row.fields)
        confirmed_before = dict(row.confirmed)
        self._settle(row, ev, device_id)
        changed = row.fields != fields_before
        match ev.kind:
            case "set" | "delete" | "restore":
                changed |= bool(merge.set_fields(row, _written(ev), ev.hlc))
            case "text":
                changed |= self._merge_text(row, self._update_of(ev))
            case "put":
                flat = {**(ev.fields or {})}
                if ev.deleted is not None:
                    flat.setdefault("deleted", ev.deleted)
                changed |= self._merge_entity(row, flat, ev.clocks or {}, ev.body_state)
            case _:
                self.store.notify(raw)
                return []
        # A write that keeps the value still moves the field's clock, and one that loses to
        # a write of this device not yet settled may still win when it is (merge.settle):
        # persist both, or they would count here and nowhere else.
        if (changed or row.clocks != clocks_before or row.confirmed != confirmed_before
                or self.store.row(entity, ev.id) is None):
            self.store.save(row)
        return [ev.id] if changed else []

    def apply_entity(self, entity: EntityName, flat: Json) -> bool:
        """Merge one snapshot entity (flat: fields, deleted, derived, clocks, body...; the
        settings: values and clocks)."""
        row = self.row_or_new(entity, str(flat["id"]))
        clocks = flat.get("clocks") or {}
        if entity == "settings":
            changed = bool(merge.set_clocked(row, _unfold(flat.get("values") or {}, clocks, ""),
                                             clocks))
            self.store.save(row)
            return changed
        flat = {**flat, **_unfold(flat.get("meta") or {}, clocks, META)}
        changed = self._merge_entity(
            row,
            flat,
            clocks,
            _b64(flat.get("body_state")),
            body=flat.get("body"),
        )
        self.store.save(row)
        return changed

    def _settle(self, row: Row, ev: Event, device_id: str | None) -> None:
        """This device's own op, back from the log: settle it if its push result did not."""
        if ev.client_seq is None or device_id is None or ev.device_id != device_id:
            return
        sent = self.store.take_sent(ev.client_seq)
        if sent is not None and ev.kind in ("set", "delete", "restore"):
            merge.settle(row, _written(ev), sent[2], ev.hlc)

    @staticmethod
    def _update_of(ev: Event) -> bytes | None:
        # docs/protocol.md: events carry `fields` as the op wrote them; a text op carries `update`
        # at the top level. Accept it inside `fields` too, to be lenient.
        if ev.update:
            return ev.update
        fields = ev.fields or {}
        return _b64(fields.get("update")) or _b64(fields.get(ev.field or "body"))

    def _merge_text(self, row: Row, update: bytes | None) -> bool:
        if not update:
            return False
        doc = self.doc(row)
        # The state vector only counts insertions: an update that only deletes leaves it
        # as it was, so compare the text too (a deletion of live text always changes it).
        before, before_text = doc.get_state(), textdoc.text_of(doc)
        try:
            textdoc.apply_update(doc, update)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # pycrdt raises pyo3 PanicException (a BaseException)
            log.exception("skipping a text update that does not apply to note %s", row.id)
            return False
        if doc.get_state() == before and textdoc.text_of(doc) == before_text:
            return False
        row.body = textdoc.text_of(doc)
        row.body_state = doc.get_update()
        return True

    def _merge_entity(
        self,
        row: Row,
        flat: Json,
        clocks: dict[str, str],
        body_state: bytes | None,
        body: Any = None,
    ) -> bool:
        fields = {k: v for k, v in flat.items() if k == "deleted" or writable(row.entity, k)}
        changed = bool(merge.set_clocked(row, fields, clocks))
        # A value without a clock (never written by anyone) only fills a gap.
        for name, value in {**defaults(row.entity), **fields}.items():
            if name not in row.fields:
                row.fields[name] = value
                changed = True
        derived = {k: v for k, v in flat.items() if k not in fields and k not in _NOT_DERIVED}
        if derived and derived != row.derived:
            row.derived = {**row.derived, **derived}
            changed = True
        if body_state:
            changed |= self._merge_text(row, body_state)
        elif isinstance(body, str) and not row.body and row.body_state is None and body:
            row.body = body
            changed = True
        return changed
