"""The device's hybrid logical clock (docs/protocol.md, Clocks).

An HLC is written `<wall ms, 13 digits>.<counter, 6 digits>.<device_id>`, so
plain string comparison is clock order, and at equal wall time and counter the
greater device id wins. `Clock.tick()` stamps a local op; `Clock.observe()`
folds in a remote clock so the next local stamp is greater than anything seen.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import NamedTuple

_HLC = re.compile(r"^(\d{13})\.(\d{6})\.(.+)$")
MAX_COUNTER = 999_999


class Hlc(NamedTuple):
    """A parsed clock value."""

    wall: int
    counter: int
    node: str

    def __str__(self) -> str:
        return format_hlc(self.wall, self.counter, self.node)


def format_hlc(wall: int, counter: int, node: str) -> str:
    """Render a clock in its wire form."""
    return f"{wall:013d}.{counter:06d}.{node}"


def parse_hlc(value: str) -> Hlc:
    """Parse the wire form; raise ValueError for anything else."""
    m = _HLC.match(value)
    if m is None:
        raise ValueError(f"malformed hlc: {value!r}")
    return Hlc(int(m.group(1)), int(m.group(2)), m.group(3))


def wall_ms() -> int:
    """The physical clock, in milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


class Clock:
    """A device's HLC. Not thread-safe on its own: the client holds its lock around it."""

    def __init__(
        self, node: str, last: str | None = None, now: Callable[[], int] = wall_ms
    ) -> None:
        self.node = node
        self._now = now
        parsed = parse_hlc(last) if last else None
        self._wall = parsed.wall if parsed else 0
        self._counter = parsed.counter if parsed else 0

    @property
    def last(self) -> str:
        """The greatest clock issued or observed so far (persisted between runs)."""
        return format_hlc(self._wall, self._counter, self.node)

    def tick(self) -> str:
        """A new clock value, greater than every value issued or observed before."""
        now = self._now()
        if now > self._wall:
            self._wall, self._counter = now, 0
        elif self._counter < MAX_COUNTER:
            self._counter += 1
        else:
            # Counter exhausted within one millisecond: borrow the next one.
            self._wall, self._counter = self._wall + 1, 0
        return self.last

    def observe(self, remote: str) -> None:
        """Advance past a clock seen in a remote event (no-op if it is older)."""
        try:
            r = parse_hlc(remote)
        except ValueError:
            return
        if (r.wall, r.counter) > (self._wall, self._counter):
            self._wall, self._counter = r.wall, r.counter
