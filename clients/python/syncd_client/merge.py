"""Pure merge rules: last-writer-wins per field, ordered by HLC strings.

A field takes an incoming value only if the incoming clock is strictly greater
than the clock the field already has; equal clocks are the same write seen
twice. `deleted` is an ordinary LWW field here. No I/O: `projection.py`
drives these against the store.

The server may give one of this device's writes another clock than the one it
was stamped with (a clock far ahead is brought back; each of a device's clocks
is raised above its previous one). Until the device learns that canonical
clock, a field it wrote carries the local one, and a server value that loses to
the local clock may win against the canonical one. So while a field holds such
a write, `Row.confirmed` keeps the greatest (clock, value) the server's log is
known to hold for it (what the field had before, and what arrived since), and
`settle` puts the field to whichever of that and the canonical write is greater:
exactly what the server's projection holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncd_client.store import Row


def set_fields(row: Row, fields: Mapping[str, Any], hlc: str) -> list[str]:
    """Apply a server `set` of `fields` stamped `hlc`; return the fields that changed."""
    return set_clocked(row, fields, {name: hlc for name in fields})


def set_clocked(row: Row, fields: Mapping[str, Any], clocks: Mapping[str, str]) -> list[str]:
    """Apply server values that each carry their own clock (an event, a `put`, a snapshot
    entity)."""
    changed: list[str] = []
    for name, value in fields.items():
        clock = clocks.get(name)
        if clock is None:
            continue
        held = row.confirmed.get(name)
        if held is not None and clock > held[0]:
            row.confirmed[name] = [clock, value]
        if clock > row.clocks.get(name, ""):
            # Above the local write, so above everything confirmed before it too.
            row.confirmed.pop(name, None)
            row.clocks[name] = clock
            if row.fields.get(name) != value or name not in row.fields:
                changed.append(name)
            row.fields[name] = value
    return changed


def set_own(row: Row, fields: Mapping[str, Any], hlc: str) -> None:
    """Apply this device's write, stamped `hlc` (above every clock it has seen)."""
    for name, value in fields.items():
        if hlc > row.clocks.get(name, ""):
            # The first unsettled write of a field keeps what the server had under it.
            row.confirmed.setdefault(name, [row.clocks.get(name, ""), row.fields.get(name)])
            row.clocks[name] = hlc
            row.fields[name] = value


def settle(row: Row, fields: Mapping[str, Any], sent: str, canonical: str | None) -> None:
    """The server's answer to this device's write of `fields` stamped `sent`: the clock its
    log holds for it, or None when it refused the write (it kept nothing of it)."""
    for name, value in fields.items():
        if row.clocks.get(name) != sent:  # a later write, local or not, holds the field
            if canonical is not None:
                set_clocked(row, {name: value}, {name: canonical})
            continue
        held = row.confirmed.pop(name, None)
        if held is not None and held[0] and (canonical is None or held[0] > canonical):
            row.clocks[name], row.fields[name] = held[0], held[1]
        else:
            # Refused over nothing the server had: the local value stays, and any server
            # write wins over it.
            row.clocks[name] = canonical or ""
