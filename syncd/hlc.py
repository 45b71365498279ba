"""Hybrid logical clocks: `<wall ms, 13 digits>.<counter, 6 digits>.<node>` strings.

String order is clock order, so the rest of syncd compares HLCs as plain strings;
at equal wall time and counter the greater node (device id) wins.
"""

from __future__ import annotations

import re
import threading
import time
from uuid import UUID

from syncd.limits import MAX_CLOCK_SKEW_MS

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_HLC = re.compile(rf"^(\d{{13}})\.(\d{{6}})\.({_UUID})$")


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


class Clock:
    """The server's own HLC, for events it makes (REST writes, collab updates, backfills)."""

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
                if self._counter > 999_999:
                    self._wall, self._counter = self._wall + 1, 0
            return format_hlc(self._wall, self._counter, node)

    def observe(self, hlc: str) -> None:
        """Never stamp a server event below a clock we have already accepted."""
        parsed = parse(hlc)
        if parsed is None:
            return
        with self._lock:
            if (parsed[0], parsed[1]) > (self._wall, self._counter):
                self._wall, self._counter = parsed[0], parsed[1]


clock = Clock()
