"""Words written: each author's net word changes per note and quarter hour (writing stats).

A text op changes its note's word count; that change is the op's words, counted for the
op's author at its HLC wall time (when the device made the edit, not when it synced). The
live path (plan.Batch) and `syncd rebuild` (rebuild.replay) both tally them as `Tally`,
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
