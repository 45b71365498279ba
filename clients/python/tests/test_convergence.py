"""Property-based convergence: random offline edits, sync schedules, faults and skewed
device clocks on several devices against the real server and real SQLite stores, then
every replica must agree, and each field holds the write with the greatest clock the log
gave it (its canonical clock: the server may bring a device's clock back).

Profiles (see clients/python/README.md): `ci` by default, `thorough` with
`SYNCD_HYPOTHESIS_PROFILE=thorough`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from conftest import note_of
from e2e_util import device, local_notes, new_email, snapshot_notes
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)
from tests.helpers import assert_acked_once

from syncd_client import SyncClient
from syncd_client.hlc import wall_ms

if TYPE_CHECKING:
    from tests.fix_server import ServerProcess

_common: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
    "print_blob": True,
}
settings.register_profile("ci", max_examples=15, stateful_step_count=25, **_common)
settings.register_profile("thorough", max_examples=2000, stateful_step_count=50, **_common)
PROFILE = os.environ.get("SYNCD_HYPOTHESIS_PROFILE", "ci")

NOTES = 3
MAX_DEVICES = 5
TITLES = ("alpha", "beta", "gamma", "delta")
TAGS = ((), ("home",), ("work", "home"))
DEVICE = st.integers(0, MAX_DEVICES - 1)
NOTE = st.integers(0, NOTES - 1)
FIELD_WRITES = ("title", "pinned", "tags")
MINUTE, HOUR = 60_000, 3_600_000
# How far a device's clock is off: minutes to hours, ahead or behind, either side of the
# server's 5-minute window.
SKEWS = (0, 4 * MINUTE, 10 * MINUTE, 2 * HOUR, -2 * HOUR)
SKEW = st.sampled_from(SKEWS) | st.integers(-5 * HOUR, 5 * HOUR)


def machine(server: ServerProcess, db: psycopg.Connection[Any]) -> type[RuleBasedStateMachine]:
    class Convergence(RuleBasedStateMachine):
        """Devices 0, 1 are user A's, device 2 user B's (an editor of A's project P);
        later devices are bootstrapped mid-way. Device indices wrap over the devices alive."""

        def __init__(self) -> None:
            super().__init__()
            self.dir = Path(tempfile.mkdtemp(prefix="syncd-conv-"))
            self.clients: list[SyncClient] = []
            self.emails = (new_email(), new_email())
            # (note, field) → every write of it: (device id, client_seq, value).
            self.writes: dict[tuple[str, str], list[tuple[str, int, Any]]] = {}
            self.offsets: dict[int, int] = {}  # device index → how far its clock is off
            self.inserted: set[str] = set()
            self.deleted: set[str] = set()
            self.owner: dict[str, int] = {}  # marker → device index that inserted it
            self.markers = 0
            a = self._device(0)
            a.register(self.emails[0], "correct horse battery staple", "A")
            a.login(self.emails[0], "correct horse battery staple", "a0", "test")
            b_owner = SyncClient.open(self.dir / "reg-b.db", server.base_url)
            b_owner.register(self.emails[1], "correct horse battery staple", "B")
            b_owner.close()
            self.project = a.create_project(title="Shared")
            self.notes = [a.create_note(title="n", project_id=self.project)
                          for _ in range(NOTES)]
            for n in self.notes:
                self._record(a, n, "title", "n")
            a.sync()
            r = a.api.http.post(f"/v1/projects/{self.project}/members",
                                json={"email": self.emails[1], "role": "editor"})
            assert r.status_code == 201, r.text
            self._bootstrap(0)
            self._bootstrap(1)

        # --- plumbing -------------------------------------------------------------------

        def _now(self, i: int) -> Callable[[], int]:
            return lambda: wall_ms() + self.offsets.get(i, 0)

        def _device(self, user: int) -> SyncClient:
            i = len(self.clients)
            c = SyncClient.open(self.dir / f"d{i}.db", server.base_url, now=self._now(i))
            c.store.set("user_index", user)
            self.clients.append(c)
            return c

        def _bootstrap(self, user: int) -> None:
            i = len(self.clients)
            c = device(self.dir / f"d{i}.db", server.base_url, self.emails[user], f"d{i}",
                       now=self._now(i))
            c.store.set("user_index", user)
            self.clients.append(c)
            c.bootstrap()

        def _dev(self, i: int) -> tuple[int, SyncClient]:
            i %= len(self.clients)
            return i, self.clients[i]

        def _record(self, c: SyncClient, note: str, field: str, value: Any) -> None:
            """The op just queued (the last client_seq given) wrote `value` to `field`."""
            assert c.device_id is not None
            seq = c.store.get_int("next_seq") - 1
            self.writes.setdefault((note, field), []).append((c.device_id, seq, value))

        def _marker(self, i: int) -> str:
            self.markers += 1
            m = f"[{i}.{self.markers}] "
            self.inserted.add(m)
            self.owner[m] = i
            return m

        def teardown(self) -> None:
            try:
                self._check()
            finally:
                for c in self.clients:
                    c.close()
                shutil.rmtree(self.dir, ignore_errors=True)  # each example's SQLite stores

        # --- rules: offline edits -------------------------------------------------------

        @rule(dev=DEVICE, note=NOTE, title=st.sampled_from(TITLES))
        def set_title(self, dev: int, note: int, title: str) -> None:
            _, c = self._dev(dev)
            c.update_note(self.notes[note], title=title)
            self._record(c, self.notes[note], "title", title)

        @rule(dev=DEVICE, note=NOTE, pinned=st.booleans())
        def set_pinned(self, dev: int, note: int, pinned: bool) -> None:
            _, c = self._dev(dev)
            c.update_note(self.notes[note], pinned=pinned)
            self._record(c, self.notes[note], "pinned", pinned)

        @rule(dev=DEVICE, note=NOTE, tags=st.sampled_from(TAGS))
        def set_tags(self, dev: int, note: int, tags: tuple[str, ...]) -> None:
            _, c = self._dev(dev)
            c.update_note(self.notes[note], tags=list(tags))
            self._record(c, self.notes[note], "tags", list(tags))

        @rule(dev=DEVICE, note=NOTE, at=st.integers(0, 20))
        def insert_marker(self, dev: int, note: int, at: int) -> None:
            """Insert a unique marker at a marker boundary (never inside another marker)."""
            i, c = self._dev(dev)
            body = note_of(c, self.notes[note])["body"]
            bounds = [0] + [k + 1 for k, ch in enumerate(body) if ch == " "]
            c.insert_text(self.notes[note], bounds[at % len(bounds)], self._marker(i))

        @rule(dev=DEVICE, note=NOTE)
        def append_by_set_body(self, dev: int, note: int) -> None:
            """Replace the whole text (a diff) with the text plus a new marker."""
            i, c = self._dev(dev)
            body = note_of(c, self.notes[note])["body"]
            c.set_body(self.notes[note], body + self._marker(i))

        @rule(dev=DEVICE, note=NOTE, which=st.integers(0, 20))
        def delete_own_marker(self, dev: int, note: int, which: int) -> None:
            i, c = self._dev(dev)
            body = note_of(c, self.notes[note])["body"]
            mine = [m for m, o in self.owner.items()
                    if o == i and m not in self.deleted and m in body]
            if not mine:
                return
            m = sorted(mine)[which % len(mine)]
            c.delete_text(self.notes[note], body.index(m), len(m))
            self.deleted.add(m)

        # --- rules: sync and faults -----------------------------------------------------

        @rule(dev=DEVICE)
        def sync(self, dev: int) -> None:
            self._dev(dev)[1].sync()

        @rule()
        def sync_everyone(self) -> None:
            """Every device syncs until quiet: all must then equal the projection (a later
            write could otherwise hide a divergence before the end)."""
            self._converged()

        @rule(dev=DEVICE)
        def push_response_lost(self, dev: int) -> None:
            """The server commits a batch; its response never reaches the device."""
            _, c = self._dev(dev)
            ops = c.outbox.next_batch()
            if ops:
                c.api.push(ops)

        @rule(dev=DEVICE)
        def push_then_resend(self, dev: int) -> None:
            """A batch is pushed and acknowledged, then sent again: all duplicates."""
            _, c = self._dev(dev)
            ops = c.outbox.next_batch()
            if not ops:
                return
            resp = c.api.push(ops)
            c.outbox.on_response(ops, resp)
            again = c.api.push(ops)
            assert [r.status for r in again.results] == ["duplicate"] * len(ops)

        @rule(dev=DEVICE)
        def restart(self, dev: int) -> None:
            """The app process ends; the device reopens its SQLite file."""
            i, c = self._dev(dev)
            path = c.store.path
            c.close()
            self.clients[i] = SyncClient.open(path, now=self._now(i))

        @initialize(offsets=st.permutations(SKEWS))
        def skew_clocks(self, offsets: list[int]) -> None:
            """Each device's wall clock starts off by its own amount (one is right, one just
            inside the server's 5-minute window, others well outside it, ahead or behind)."""
            self.offsets.update(enumerate(offsets))

        @rule(dev=DEVICE, offset=SKEW)
        def skew_clock(self, dev: int, offset: int) -> None:
            """The device's wall clock is set wrong (or right again) from now on."""
            i, _ = self._dev(dev)
            self.offsets[i] = offset

        @precondition(lambda self: len(self.clients) < MAX_DEVICES)
        @rule(user=st.integers(0, 1))
        def bootstrap_new_device(self, user: int) -> None:
            self._bootstrap(user)

        # --- quiescence -----------------------------------------------------------------

        def _converged(self) -> dict[str, dict[str, Any]]:
            for _ in range(2):
                for c in self.clients:
                    c.sync()
            views = [local_notes(c) for c in self.clients]
            snap = snapshot_notes(self.clients[0])
            for i, v in enumerate(views):
                assert v == snap, f"device {i} differs from the snapshot"
            # The fields' clocks too: a device whose clock for a field differs from the
            # log's orders the next write of that field differently.
            clocks = {n["id"]: n["clocks"] for n in self.clients[0].api.snapshot().notes}
            for i, c in enumerate(self.clients):
                mine = {r.id: r.clocks for r in c.store.rows("note")}
                assert mine == clocks, f"device {i}'s clocks differ from the snapshot's"
            return snap

        def _check(self) -> None:
            snap = self._converged()
            for (note, field), writes in self.writes.items():
                hlc, value = max((clock, value) for device_id, seq, value in writes
                                 for clock in self._canonical(device_id, seq))
                assert snap[note][field] == value, (note, field, hlc, value, snap[note][field])
            bodies = "".join(snap[n]["body"] for n in self.notes)
            for m in self.inserted - self.deleted:
                assert bodies.count(m) == 1, f"marker {m!r} lost or doubled: {bodies!r}"
            for m in self.deleted:
                assert m not in bodies, f"deleted marker {m!r} came back"
            for c in self.clients:
                assert c.pending() == 0 and c.device_id is not None
                assert_acked_once(db, c.device_id, c.acked)
                # A device's canonical clocks keep the order of its ops.
                clocks = [r[0] for r in db.execute(
                    "SELECT DISTINCT ON (client_seq) hlc FROM events WHERE device_id = %s"
                    " AND client_seq IS NOT NULL ORDER BY client_seq", (c.device_id,))]
                assert clocks == sorted(set(clocks)), (c.device_id, clocks)

        def _canonical(self, device_id: str, seq: int) -> list[str]:
            """The clock the log holds for a device's op (none if it was refused)."""
            return [r[0] for r in db.execute(
                "SELECT hlc FROM events WHERE device_id = %s AND client_seq = %s LIMIT 1",
                (device_id, seq))]

    return Convergence


def test_devices_converge(server: ServerProcess, db: psycopg.Connection[Any]) -> None:
    run_state_machine_as_test(machine(server, db), settings=settings.get_profile(PROFILE))
