"""Offline catch-up through the Python SDK: a device makes 10,000 local edits across 1,000
notes while offline (1,000 creates, then title/tag/pin sets and text inserts at random),
then syncs up (push, 1000-op batches); a second device, synced before the edits, catches
up by pulling the log. Both devices are `syncd_client.SyncClient`s with real SQLite stores
talking HTTP to a real `syncd serve`.

    python -m bench.offline [--database-url URL] [--notes 1000] [--edits 10000]

Targets: push under 3 s, pull under 3 s.
"""

from __future__ import annotations

import random
import secrets
import time

from syncd_client import SyncClient

from bench.common import bench_env, console, machine, ms, parser, rate, table, verdict

TARGET_S = 3.0
PASSWORD = "correct horse battery staple"


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--notes", type=int, default=1000)
    p.add_argument("--edits", type=int, default=10_000,
                   help="local edits in all, the note creations included")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    rnd = random.Random(args.seed)
    with bench_env(args) as env:
        url = env.server.base_url
        email = f"offline-{secrets.token_hex(6)}@example.com"
        a = SyncClient.open(env.tmp / "a.db", url)
        a.register(email, PASSWORD)
        a.login(email, PASSWORD, "offline", "bench")
        b = SyncClient.open(env.tmp / "b.db", url)
        b.login(email, PASSWORD, "catch-up", "bench")
        b.bootstrap()

        t0 = time.perf_counter()
        notes = [a.create_note(title=f"Note {i}") for i in range(args.notes)]
        for k in range(args.edits - args.notes):
            n = rnd.choice(notes)
            r = rnd.random()
            if r < 0.4:
                a.insert_text(n, 0, f"word{k} ")
            elif r < 0.7:
                a.update_note(n, title=f"Title {k}")
            elif r < 0.85:
                a.update_note(n, tags=[f"t{k % 7}"])
            else:
                a.update_note(n, pinned=bool(k % 2))
        local_s = time.perf_counter() - t0
        queued = a.pending()

        t0 = time.perf_counter()
        pushed = a.push()
        push_s = time.perf_counter() - t0
        assert a.pending() == 0 and pushed == queued, (pushed, queued)

        t0 = time.perf_counter()
        pulled = b.pull()
        pull_s = time.perf_counter() - t0
        assert pulled == queued, (pulled, queued)
        # Correctness spot check: the catching-up device equals the offline one.
        keys = ("title", "tags", "pinned", "body")
        assert ({n["id"]: [n[k] for k in keys] for n in a.notes()}
                == {n["id"]: [n[k] for k in keys] for n in b.notes()})

        t0 = time.perf_counter()
        c = SyncClient.open(env.tmp / "c.db", url)
        c.login(email, PASSWORD, "fresh", "bench")
        c.bootstrap()
        boot_s = time.perf_counter() - t0

        rows = [
            [f"{queued:,} local edits, offline (SQLite)", ms(local_s), rate(queued / local_s),
             "—"],
            [f"push {queued:,} ops (sync up)", ms(push_s), rate(queued / push_s),
             verdict(push_s < TARGET_S)],
            [f"pull {pulled:,} events (catch up)", ms(pull_s), rate(pulled / pull_s),
             verdict(pull_s < TARGET_S)],
            [f"new device: login + snapshot of {len(notes):,} notes", ms(boot_s), "—", "—"],
        ]
        console.print(table(f"bench.offline: {args.notes:,} notes, {queued:,} edits",
                            ["step", "ms", "per s", f"target < {TARGET_S:.0f} s"], rows))
        console.print(machine(env))
        for x in (a, b, c):
            x.close()


if __name__ == "__main__":
    main()
