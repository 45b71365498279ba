"""The SDK on devices whose clocks are wrong, against a real server: each device adopts the
canonical clocks the server gives its ops and ends equal to the server's projection,
fields and clocks alike."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from e2e_util import PASSWORD, local_notes, new_email, snapshot_notes

from syncd_client import SyncClient
from syncd_client.hlc import wall_ms

if TYPE_CHECKING:
    from tests.fix_server import ServerProcess

MINUTE = 60_000
Make = Callable[..., SyncClient]


def skewed(offset_ms: int) -> Callable[[], int]:
    """A wall clock `offset_ms` off that moves at least 1 ms between readings, so two ops
    made in a row differ in wall time and start their counters at 0 alike."""
    steps = itertools.count()
    return lambda: wall_ms() + offset_ms + next(steps)


@pytest.fixture
def mk(tmp_path: Path, server: ServerProcess) -> Iterator[Make]:
    made: list[SyncClient] = []

    def make(name: str, email: str, offset_ms: int = 0, register: bool = False) -> SyncClient:
        c = SyncClient.open(tmp_path / f"{name}.db", server.base_url, now=skewed(offset_ms))
        if register:
            c.register(email, PASSWORD, name)
        c.login(email, PASSWORD, name, "test")
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def clocks(c: SyncClient) -> dict[str, dict[str, str]]:
    return {r.id: r.clocks for r in c.store.rows("note")}


def snapshot_clocks(c: SyncClient) -> dict[str, dict[str, str]]:
    return {n["id"]: n["clocks"] for n in c.api.snapshot().notes}


def assert_equal_to_server(*devices: SyncClient) -> dict[str, dict[str, Any]]:
    snap = snapshot_notes(devices[0])
    for c in devices:
        assert local_notes(c) == snap
        assert clocks(c) == snapshot_clocks(c)
        assert c.pending() == 0
    return snap


def test_two_writes_far_ahead_in_one_batch_end_as_the_device_made_them(mk: Make) -> None:
    """The divergence: both ops used to get one canonical clock; the server kept "first"
    (a tie does not win), the device "second"."""
    a = mk("ahead", new_email(), 10 * MINUTE, register=True)
    nid = a.create_note(title="start")
    a.update_note(nid, title="first")
    a.update_note(nid, title="second")
    a.sync()
    snap = assert_equal_to_server(a)
    assert snap[nid]["title"] == "second"


def test_a_write_far_ahead_loses_to_what_the_server_held_above_its_canonical_clock(
        mk: Make, tmp_path: Path, server: ServerProcess) -> None:
    """Device B's title, 3 minutes ahead (inside the window), is above A's canonical clock
    (the server's time) though below the clock A stamped 10 minutes ahead: the server keeps
    B's title, and A, which had put its own above B's, ends with B's too."""
    email = new_email()
    b = mk("b", email, 3 * MINUTE, register=True)
    nid = b.create_note(title="start")
    b.sync()
    a = mk("a", email, 10 * MINUTE)
    a.bootstrap()
    b.update_note(nid, title="from b")
    b.sync()
    a.update_note(nid, title="from a")
    a.pull()  # B's title loses to A's local clock here, and nothing else changes
    a.close()  # the device restarts before it pushes
    a = SyncClient.open(tmp_path / "a.db", server.base_url, now=skewed(10 * MINUTE))
    try:
        a.sync()
        b.sync()
        snap = assert_equal_to_server(a, b)
        assert snap[nid]["title"] == "from b"
    finally:
        a.close()


def test_a_write_far_ahead_is_kept_where_nothing_above_its_canonical_clock(mk: Make) -> None:
    email = new_email()
    behind = mk("behind", email, -60 * MINUTE, register=True)
    nid = behind.create_note(title="old")
    behind.sync()
    ahead = mk("ahead", email, 3 * 60 * MINUTE)
    ahead.bootstrap()
    ahead.update_note(nid, title="new")
    behind.update_note(nid, tags=["x"])
    behind.sync()
    ahead.sync()
    behind.sync()
    snap = assert_equal_to_server(ahead, behind)
    assert (snap[nid]["title"], snap[nid]["tags"]) == ("new", ["x"])


def test_a_write_far_ahead_over_a_pulled_value_above_its_canonical_clock(mk: Make) -> None:
    """A pulls B's title (3 minutes ahead), then writes over it with a clock 2 hours ahead:
    the server brings A's clock back below B's and keeps B's title; so does A."""
    email = new_email()
    b = mk("b", email, 3 * MINUTE, register=True)
    nid = b.create_note(title="from b")
    b.sync()
    a = mk("a", email, 2 * 60 * MINUTE)
    a.bootstrap()
    a.update_note(nid, title="from a")
    a.sync()
    b.sync()
    snap = assert_equal_to_server(a, b)
    assert snap[nid]["title"] == "from b"
