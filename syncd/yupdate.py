"""Pure: what a Yjs v1 update writes, read from its own bytes.

A text op is accepted or refused from the update it carries alone, before it touches a
document: an update that waits for another would otherwise be refused only when that
other one arrives, and take it down with it. pycrdt exposes no decoder of an update's
structs, so this reads the lib0 v1 update format (Yjs `updates.js`, `encoding.js`), once
over the bytes (linear in their size), and says where its items go and what text they
insert. It knows nothing of notes: merge.py decides what to refuse.

    update     varUint(clients) { varUint(structs) varUint(client) varUint(clock) struct* }*
               delete set: varUint(clients) { varUint(client) varUint(n) (clock, len)^n }*
    struct     info byte: low 5 bits the content (0 GC, 10 Skip: varUint(length)), 0x80 an
               origin ID, 0x40 a right origin ID, 0x20 a map key (parentSub); with neither
               origin, the parent: varUint(1) varString(root name) | varUint(0) ID
    content    1 deleted varUint · 2 JSON varUint varString* · 3 binary varUint8Array ·
               4 string varString · 5 embed varString · 6 format varString varString ·
               7 type · 8 any varUint any* · 9 subdocument
"""

from __future__ import annotations

from dataclasses import dataclass, field

GC, DELETED, JSON, BINARY, STRING, EMBED, FORMAT, TYPE, ANY, SUBDOC, SKIP = range(11)
ORIGIN, RIGHT_ORIGIN, PARENT_SUB = 0x80, 0x40, 0x20


class MalformedUpdate(ValueError):
    """Bytes that are not a Yjs v1 update."""


class _Stop(Exception):
    """Reading ends early: what follows a nested type does not matter."""


@dataclass(frozen=True, slots=True)
class Writes:
    """What an update's items write."""

    roots: frozenset[str]  # the root types named as a parent (items after an origin inherit it)
    nested: bool  # an item is a shared type or a subdocument, or is parented on one
    nul: bool  # an inserted string holds U+0000
    # A client's structs start at clock 0: only those can a fresh document integrate (the
    # rest waits for the clocks before it), so only then does a trial on one try anything.
    from_zero: bool = field(default=False, compare=False)


def read_update(update: bytes) -> Writes:
    """Read every struct and the delete set of a v1 update; MalformedUpdate if it is not one.
    Bytes after the delete set are ignored, as Yjs and yrs do."""
    reader = _Reader(update)
    try:
        reader.update()
    except _Stop:
        pass
    except IndexError:
        raise MalformedUpdate("truncated update") from None
    except UnicodeDecodeError:
        raise MalformedUpdate("a name is not UTF-8") from None
    return Writes(frozenset(reader.roots), reader.nested, reader.nul, reader.from_zero)


class _Reader:
    __slots__ = ("buf", "from_zero", "nested", "nul", "pos", "roots")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0
        self.roots: set[str] = set()
        self.nested = False
        self.nul = False
        self.from_zero = False

    def uint(self) -> int:
        buf, pos = self.buf, self.pos
        byte = buf[pos]
        value = byte & 0x7F
        shift = 7
        while byte >= 0x80:
            pos += 1
            byte = buf[pos]
            value |= (byte & 0x7F) << shift
            shift += 7
            if shift > 70:  # lib0 numbers fit 53 bits; refuse endless padding
                raise MalformedUpdate("varUint too long")
        self.pos = pos + 1
        return value

    def bytes_(self) -> bytes:
        length = self.uint()
        end = self.pos + length
        if end > len(self.buf):
            raise MalformedUpdate("truncated update")
        data = self.buf[self.pos:end]
        self.pos = end
        return data

    def update(self) -> None:
        for _ in range(self.uint()):
            structs = self.uint()
            self.uint()  # client
            if self.uint() == 0:  # clock of the first struct
                self.from_zero = True
            for _ in range(structs):
                self.struct()
        for _ in range(self.uint()):  # the delete set
            self.uint()
            for _ in range(self.uint()):
                self.uint()
                self.uint()

    def struct(self) -> None:
        info = self.buf[self.pos]
        self.pos += 1
        ref = info & 0x1F
        if info == SKIP or ref == GC:
            self.uint()  # its length
            return
        if info & ORIGIN:
            self.uint()
            self.uint()
        if info & RIGHT_ORIGIN:
            self.uint()
            self.uint()
        if not info & (ORIGIN | RIGHT_ORIGIN):  # the parent is written only then
            if self.uint() == 1:
                self.roots.add(self.bytes_().decode())
            else:  # the ID of the item holding a nested type
                self.nested = True
                self.uint()
                self.uint()
            if info & PARENT_SUB:
                self.bytes_()
        self.content(ref)

    def content(self, ref: int) -> None:
        if ref == STRING:
            if b"\x00" in self.bytes_():
                self.nul = True
        elif ref == DELETED:
            self.uint()
        elif ref in (EMBED, BINARY):
            self.bytes_()
        elif ref == FORMAT:
            self.bytes_()
            self.bytes_()
        elif ref == JSON:
            for _ in range(self.uint()):
                self.bytes_()
        elif ref == ANY:
            for _ in range(self.uint()):
                self.any()
        elif ref in (TYPE, SUBDOC):
            self.nested = True  # an update holding one is refused: read no further
            raise _Stop
        else:
            raise MalformedUpdate(f"unknown content type {ref}")

    def any(self) -> None:
        """Skip one lib0 `any` value, without recursion: a stack of (values left, keyed)."""
        stack = [(1, False)]
        while stack:
            left, keyed = stack.pop()
            if left > 1:
                stack.append((left - 1, keyed))
            if keyed:
                self.bytes_()
            tag = self.buf[self.pos]
            self.pos += 1
            if tag in (125, 119, 116):  # integer, string, Uint8Array
                self.uint() if tag == 125 else self.bytes_()
            elif tag in (124, 123, 122):  # float32, float64, bigint64
                self.pos += 4 if tag == 124 else 8
            elif tag in (118, 117):  # object, array
                count = self.uint()
                if count > len(self.buf) - self.pos:  # each value takes a byte at least
                    raise MalformedUpdate("truncated update")
                if count:
                    stack.append((count, tag == 118))
            elif tag not in (127, 126, 121, 120):  # undefined, null, false, true
                raise MalformedUpdate(f"unknown value tag {tag}")
