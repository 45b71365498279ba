"""Hybrid logical clocks: `<wall ms, 13 digits>.<counter, 6 digits>.<node>` strings.

String order is clock order, so the rest of syncd compares HLCs as plain strings;
at equal wall time and counter the greater node (device id) wins.

Clock rules (docs/protocol.md, "Clocks"):
- A device's clock is canonicalised on push: a wall time more than MAX_CLOCK_SKEW_MS
  ahead of the server's becomes the server's (`canonical`), and each clock is then
  raised above the device's previous canonical clock (`above`), so a device's ops keep
  their order in the log within a batch and across batches.
- A server-made op is stamped by `clock` once its entities are locked, after it has
  observed every clock they hold: it is above every clock of the fields it writes.
  `clock` also starts from the greatest clock the database holds (sync.resume_clock).
"""

from __future__ import annotations

import re
import threading
import time
from uuid import UUID

from syncd.limits import MAX_CLOCK_SKEW_MS

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_HLC = re.compile(rf"^(\d{{13}})\.(\d{{6}})\.({_UUID})$")
MAX_COUNTER = 999_999


def parse(hlc: str) -> tuple[int, int, str] | None:
    """Split a clock into (wall ms, counter, node), or None when it is malformed."""
    m = _HLC.match(hlc)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), m.group(3)


def format_hlc(wall: int, counter: int, node: UUID | str) -> str:
    return f"{wall:013d}.{counter:06d}.{node}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def canonical(hlc: str, node: str, server_ms: int) -> str | None:
    """The clock as the log will hold it (canonicalised when too far ahead), or None when it
    is malformed or not `node`'s. The hot path of a push: slices, not the regex."""
    wall, counter = hlc[:13], hlc[14:20]
    if (len(hlc) != 21 + len(node) or hlc[13] != "." or hlc[20] != "." or hlc[21:] != node
            or not (wall.isascii() and wall.isdigit() and counter.isascii()
                    and counter.isdigit())):
        return None
    if int(wall) > server_ms + MAX_CLOCK_SKEW_MS:
        return format_hlc(server_ms, int(counter), node)
    return hlc


def above(hlc: str, previous: str | None) -> str:
    """`hlc`, or when it is not above `previous` (the same node's last clock) the least
    clock of its node that is: a device's canonical clocks strictly increase."""
    if previous is None or hlc > previous:
        return hlc
    wall, counter = int(previous[:13]), int(previous[14:20]) + 1
    if counter > MAX_COUNTER:
        wall, counter = wall + 1, 0
    return format_hlc(wall, counter, hlc[21:])


class Clock:
    """The server's own HLC, for events it makes (REST writes, collab updates, backfills).
    `tick` is above every clock it has issued or observed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wall = 0
        self._counter = 0

    def tick(self, node: UUID | str) -> str:
        with self._lock:
            wall = now_ms()
            if wall > self._wall:
                self._wall, self._counter = wall, 0
            else:
                self._counter += 1
                if self._counter > MAX_COUNTER:
                    self._wall, self._counter = self._wall + 1, 0
            return format_hlc(self._wall, self._counter, node)

    def observe(self, hlc: str) -> None:
        """Never stamp a server event below a clock accepted or read (a no-op for older or
        malformed clocks)."""
        parsed = parse(hlc)
        if parsed is None:
            return
        with self._lock:
            if (parsed[0], parsed[1]) > (self._wall, self._counter):
                self._wall, self._counter = parsed[0], parsed[1]


clock = Clock()
