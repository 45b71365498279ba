"""Note bodies as pycrdt documents: load, edit by minimal diff, export updates.

A body is a `pycrdt.Doc` whose root `Text` is named `body`. Local edits are
made inside one transaction and the Yjs v1 update that transaction produced
(captured with `Doc.observe`) is what gets queued as a `text` op: it carries
only the new items and the deletions of that edit.

pycrdt indexes `Text` in UTF-8 bytes, while callers think in characters, so
every position crosses `_byte_offset` on the way in.
"""

from __future__ import annotations

from collections.abc import Callable

from pycrdt import Doc, Text, TransactionEvent

ROOT = "body"


def new_doc(state: bytes | None = None) -> Doc[Text]:
    """A document (usable from any thread) holding `state`, or an empty one."""
    doc: Doc[Text] = Doc(allow_multithreading=True)
    doc.get(ROOT, type=Text)
    if state:
        doc.apply_update(state)
    return doc


def text_of(doc: Doc[Text]) -> str:
    """The plain text of the body."""
    return str(doc.get(ROOT, type=Text))


def common_affixes(old: str, new: str) -> tuple[int, int]:
    """Lengths (in characters) of the common prefix and of the common suffix.

    The suffix never overlaps the prefix, so `old[p:len(old)-s]` is what was
    removed and `new[p:len(new)-s]` what was inserted.
    """
    limit = min(len(old), len(new))
    p = 0
    while p < limit and old[p] == new[p]:
        p += 1
    s = 0
    while s < limit - p and old[-1 - s] == new[-1 - s]:
        s += 1
    return p, s


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def _edit(doc: Doc[Text], change: Callable[[Text, str], None]) -> bytes:
    """Run `change` in one transaction; return the update it produced (b"" if none)."""
    updates: list[bytes] = []

    def capture(event: TransactionEvent) -> None:
        updates.append(event.update)

    sub = doc.observe(capture)
    try:
        text = doc.get(ROOT, type=Text)
        with doc.transaction():
            change(text, str(text))
    finally:
        doc.unobserve(sub)
    # A transaction that changed nothing reports no update at all.
    return updates[0] if updates else b""


def replace_text(doc: Doc[Text], new: str) -> bytes:
    """Turn the body into `new` with one deletion and one insertion; return the update."""

    def change(text: Text, old: str) -> None:
        p, s = common_affixes(old, new)
        start = _byte_offset(old, p)
        removed = old[p : len(old) - s]
        inserted = new[p : len(new) - s]
        if removed:
            del text[start : start + len(removed.encode("utf-8"))]
        if inserted:
            text.insert(start, inserted)

    return _edit(doc, change)


def insert_text(doc: Doc[Text], index: int, value: str) -> bytes:
    """Insert `value` before character `index`; return the update."""

    def change(text: Text, old: str) -> None:
        if not 0 <= index <= len(old):
            raise IndexError(f"index {index} out of range 0..{len(old)}")
        if value:
            text.insert(_byte_offset(old, index), value)

    return _edit(doc, change)


def delete_text(doc: Doc[Text], index: int, length: int) -> bytes:
    """Delete `length` characters from character `index`; return the update."""

    def change(text: Text, old: str) -> None:
        if index < 0 or length < 0 or index + length > len(old):
            raise IndexError(f"range {index}+{length} out of range 0..{len(old)}")
        if length:
            start = _byte_offset(old, index)
            del text[start : start + len(old[index : index + length].encode("utf-8"))]

    return _edit(doc, change)


def apply_update(doc: Doc[Text], update: bytes) -> None:
    """Merge a remote update or state; updates commute and re-applying is harmless."""
    doc.apply_update(update)
