"""Pure merge rules: last-writer-wins per field, ordered by HLC strings.

A field takes an incoming value only if the incoming clock is strictly greater
than the clock the field already has; equal clocks are the same write seen
twice. `deleted` is an ordinary LWW field here. No I/O: `projection.py`
drives these against the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncd_client.store import Row


def set_fields(row: Row, fields: Mapping[str, Any], hlc: str) -> list[str]:
    """Apply a `set` of `fields` stamped `hlc`; return the fields that changed."""
    return set_clocked(row, fields, {name: hlc for name in fields})


def set_clocked(row: Row, fields: Mapping[str, Any], clocks: Mapping[str, str]) -> list[str]:
    """Apply fields that each carry their own clock (a `put` or a snapshot entity)."""
    changed: list[str] = []
    for name, value in fields.items():
        clock = clocks.get(name)
        if clock is None:
            continue
        if clock > row.clocks.get(name, ""):
            row.clocks[name] = clock
            if row.fields.get(name) != value or name not in row.fields:
                changed.append(name)
            row.fields[name] = value
    return changed


def rewrite_clock(row: Row, old: str, new: str) -> bool:
    """Replace clock `old` by its canonical form `new` wherever a field still carries it."""
    hit = False
    for name, clock in row.clocks.items():
        if clock == old:
            row.clocks[name] = new
            hit = True
    return hit
