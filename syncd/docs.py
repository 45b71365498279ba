"""Hot notes' documents kept between transactions, by the stored state they hold.

A text op merges into the note's document, which each transaction builds again from the
stored `body_state` (merge.py: apply the whole state, then encode it back to see whether
anything in it waits). For a note written several times a second (a collab room's
write-behind, one transaction per author per turn) that rebuild was most of the
transaction's work on the event loop. So the document a transaction leaves is kept here
after its save, with the state it was saved as, and the next transaction on the note
takes it back when the row it locked holds those very bytes. A key of bytes, not of a
version, makes a kept document safe whatever happened meanwhile: a rolled-back save, a
write on another node or by `rebuild` leave the row with other bytes, and the document
is built afresh. A document whose content is not exactly its state (an item waiting for
another: `Entity.whole`) is not kept.

A kept document belongs to the cache until taken, then to the one entity that took it:
never two at once, so a batch planned in a thread (offload.py) has it to itself. At most
`max_docs` documents, holding at most `max_bytes` of state, least recently kept first out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from pycrdt import Doc

from syncd.merge import Entity

MAX_DOCS = 128
MAX_BYTES = 16 * 1024 * 1024  # of stored state; a document in memory takes a few times that


class DocCache:
    def __init__(self, max_docs: int = MAX_DOCS, max_bytes: int = MAX_BYTES) -> None:
        self.max_docs = max_docs
        self.max_bytes = max_bytes
        self._docs: OrderedDict[UUID, tuple[bytes, Doc[Any]]] = OrderedDict()
        self._bytes = 0
        self.hits = self.misses = 0  # for /metrics

    def take(self, entities: Iterable[Entity]) -> None:
        """Give each just-loaded note the document kept for the state its row holds."""
        for ent in entities:
            kept = self._docs.pop(ent.id, None)
            if kept is None:
                continue
            state, doc = kept
            self._bytes -= len(state)
            if ent.doc is not None or not ent.state_loaded or ent.applied_updates:
                continue  # it has its document already (a caller's), or may not take one
            if ent.body_state == state:
                ent.doc, ent.doc_bytes = doc, len(state)
                self.hits += 1
            else:  # the row moved on (another node, a rolled-back save, a rebuild)
                self.misses += 1

    def keep(self, entities: Iterable[Entity]) -> None:
        """Keep the documents of saved notes (after `Batch.finish`, which folded each
        changed document into its `body_state`). An entity gives its document up: later
        reads of it take `body_state`, which holds the same."""
        for ent in entities:
            doc, state = ent.doc, ent.body_state
            if (doc is None or not state or ent.whole is not None or ent.text_stale
                    or ent.entity != "note" or len(state) > self.max_bytes):
                continue
            ent.doc, ent.applied_updates = None, []
            old = self._docs.pop(ent.id, None)
            if old is not None:
                self._bytes -= len(old[0])
            self._docs[ent.id] = (state, doc)
            self._bytes += len(state)
            while len(self._docs) > self.max_docs or self._bytes > self.max_bytes:
                _, (gone, _doc) = self._docs.popitem(last=False)
                self._bytes -= len(gone)

    def __len__(self) -> int:
        return len(self._docs)


cache = DocCache()
