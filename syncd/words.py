"""Words written: each author's net word changes per note and quarter hour (writing stats).

A text op changes its note's word count; that change is the op's words, counted for the
op's author at its HLC wall time (when the device made the edit, not when it synced). The
live path (plan.Batch) and `syncd rebuild` (rebuild.replay) both tally them with `Runs`,
and the tally is added to `words_written` in the op's transaction (store.py), so stats read a small
table instead of replaying the log (which cost ~50 µs per text event, on every request).

The quarter hour: every time zone's offset from UTC is a whole number of quarter hours,
so a quarter never straddles two local days and stats can sum quarters into any zone's
days. A row may sum to zero (words typed and deleted again), or be absent where `rebuild`
counted a run of ops at once: both mean 0.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from uuid import UUID

from syncd import hlc as hlcs
from syncd.merge import Entity, read_text

QUARTER_MS = 15 * 60 * 1000

# (author, note, quarter start) → net words
Tally = defaultdict[tuple[UUID, UUID, datetime], int]


def new_tally() -> Tally:
    return defaultdict(int)


def quarter(hlc: str, fallback: datetime | None = None) -> datetime:
    """The start of the quarter hour (UTC) of a clock's wall time."""
    parsed = hlcs.parse(hlc)
    if parsed is None:
        if fallback is None:
            raise ValueError(f"not a clock: {hlc!r}")
        wall = int(fallback.timestamp() * 1000)
    else:
        wall = parsed[0]
    return datetime.fromtimestamp(wall // QUARTER_MS * QUARTER_MS / 1000, UTC)


class Runs:
    """What runs of text ops wrote. A run is a note's consecutive text ops by one author in
    one quarter hour; what it wrote is the note's word count after it minus before it, so
    the text is read once a run, not after every op (a long note's length times its
    edits)."""

    def __init__(self) -> None:
        self.tally: Tally = new_tally()
        self._open: dict[UUID, tuple[UUID, datetime, int]] = {}  # note → author, quarter, words

    def start(self, note: Entity, author: UUID, when: datetime) -> None:
        """Before a text op on `note`: one by another author or in another quarter hour
        ends the note's open run and starts another."""
        run = self._open.get(note.id)
        if run is not None and run[:2] == (author, when):
            return
        if run is not None:
            self.end(note)
        self._open[note.id] = (author, when, note.word_count)

    def end(self, note: Entity) -> None:
        run = self._open.pop(note.id, None)
        if run is None:
            return
        read_text(note)
        if delta := note.word_count - run[2]:
            self.tally[(run[0], note.id, run[1])] += delta

    def end_all(self, entities: dict[UUID, Entity]) -> None:
        for id in list(self._open):
            self.end(entities[id])
