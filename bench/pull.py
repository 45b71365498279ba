"""Pull and snapshot: the time for a device to pull 100,000 events (GET /v1/sync/pull,
limit 5000, paginated) and to load a snapshot of 10,000 notes, against a real
`syncd serve` over HTTP, side by side with PostgreSQL's own limits:
`COPY (the same rows) TO STDOUT` for reads, and COPY FROM of the same event rows for the
seeding pushes.

    python -m bench.pull [--database-url URL] [--events 100000] [--notes 10000]

The log is seeded through the real push path (1000-op batches): every note is created,
gets a Yjs body (a `text` op), then `set` updates fill the log up to --events.
Targets: pull 100,000 events in under 2 s; a 10,000-note snapshot in under 1 s.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from pycrdt import Doc, Text

from bench.common import (
    CopyBaseline,
    Device,
    EventRows,
    bench_env,
    check_applied,
    console,
    machine,
    median,
    ms,
    new_id,
    parser,
    rate,
    ratio,
    table,
    verdict,
)

TARGET_PULL_S = 2.0
TARGET_SNAPSHOT_S = 1.0
PAGE = 5000
BATCH = 1000
REPEAT = 3


def body_update(i: int) -> bytes:
    doc: Doc[Any] = Doc()
    text = doc.get("body", type=Text)
    text += f"Note {i}: the quick brown fox jumps over the lazy dog."
    return doc.get_update()


def seed(dev: Device, rows: EventRows, n_events: int, n_notes: int,
         ) -> tuple[float, list[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]]:
    """Fill the log through push; returns (seconds, the equivalent COPY batches)."""
    ids = [new_id() for _ in range(n_notes)]
    ops: list[dict[str, Any]] = [dev.set_op(i, title=f"Note {k}", tags=["bench"])
                                 for k, i in enumerate(ids)]
    updates = {}
    for k, i in enumerate(ids):
        if len(ops) >= n_events:
            break
        update = body_update(k)
        op = dev.text_op(i, base64.b64encode(update).decode())
        updates[op["client_seq"]] = update
        ops.append(op)
    k = 0
    while len(ops) < n_events:
        ops.append(dev.set_op(ids[k % n_notes], title=f"Note {k % n_notes} v{k // n_notes}"))
        k += 1
    batches = [ops[i:i + BATCH] for i in range(0, len(ops), BATCH)]
    bodies = [dev.push_body(b) for b in batches]
    t0 = time.perf_counter()
    for b, body in zip(batches, bodies, strict=True):
        _, resp = dev.push_raw(body)
        check_applied(resp, len(b))
    seconds = time.perf_counter() - t0
    copy_batches = [rows.from_ops(b, lambda op: updates.get(op["client_seq"]))
                    for b in batches]
    return seconds, copy_batches


def pull_all(dev: Device) -> tuple[float, int, list[float]]:
    """Pull the whole log from cursor 0: (seconds, events, per-page seconds)."""
    cursor, count, pages = 0, 0, []
    t0 = time.perf_counter()
    while True:
        dt, page = dev.get("/v1/sync/pull", cursor=cursor, limit=PAGE)
        pages.append(dt)
        count += len(page["events"])
        cursor = page["cursor"]
        if not page["has_more"]:
            return time.perf_counter() - t0, count, pages


def main() -> int:
    p = parser(__doc__ or "")
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--notes", type=int, default=10_000)
    args = p.parse_args()
    started = time.perf_counter()
    with bench_env(args) as env:
        console.print(f"[bold]bench.pull[/bold] — {machine(env)}")
        dev = env.device()
        rows = EventRows(dev.user_id, dev.device_id)
        baseline = CopyBaseline(env.url)
        console.print(f"seeding {args.events:,} events on {args.notes:,} notes via push …")
        seed_s, copy_batches = seed(dev, rows, args.events, args.notes)
        seed_copy = baseline.run(copy_batches)
        with env.client() as http:  # a second device of the same user pulls
            reader = Device.login(http, dev.email, "reader")
            pulls = [pull_all(reader) for _ in range(REPEAT)]
            snaps = []
            for _ in range(REPEAT):
                dt, snap = reader.get("/v1/sync/snapshot")
                snaps.append(dt)
        n_notes = len(snap["notes"])
        pulled = pulls[0][1]
        user = dev.user_id
        pull_copy = [baseline.copy_out(
            """SELECT e.seq, e.entity, e.entity_id, e.kind, e.fields, e.hlc, e.device_id,
                      e.author_id, e.client_seq, e.at, p.data
               FROM events e LEFT JOIN payloads p ON e.has_payload AND p.op_id = e.op_id
               WHERE e.user_id = %s ORDER BY e.seq""", (user,))[0] for _ in range(REPEAT)]
        snap_copy = [baseline.copy_out(
            "SELECT n.* FROM notes n WHERE n.owner_id = %s ORDER BY n.id", (user,))[0]
            for _ in range(REPEAT)]
        baseline.close()

    pull_s = median([p[0] for p in pulls])
    page_ms = median([median(p[2]) for p in pulls])
    snap_s = median(snaps)
    pull_copy_s, snap_copy_s = median(pull_copy), median(snap_copy)
    console.print(table(
        f"pull / snapshot: syncd (HTTP, msgspec JSON decode) vs COPY … TO STDOUT "
        f"(median of {REPEAT})",
        ("what", "n", "syncd s", "syncd /s", "COPY s", "COPY /s", "syncd ÷ COPY"), [
            (f"pull, pages of {PAGE}", f"{pulled:,}", f"{pull_s:.3f}", rate(pulled / pull_s),
             f"{pull_copy_s:.3f}", rate(pulled / pull_copy_s), ratio(pull_copy_s, pull_s)),
            ("snapshot (notes)", f"{n_notes:,}", f"{snap_s:.3f}", rate(n_notes / snap_s),
             f"{snap_copy_s:.3f}", rate(n_notes / snap_copy_s), ratio(snap_copy_s, snap_s)),
            (f"seed: push, {BATCH}-op batches", f"{seed_copy.rows:,}", f"{seed_s:.3f}",
             rate(seed_copy.rows / seed_s), f"{seed_copy.seconds:.3f}", rate(seed_copy.rate),
             ratio(seed_copy.seconds, seed_s)),
        ]))
    console.print(f"pull page p50: {page_ms * 1000:.1f} ms for {PAGE} events "
                  f"({len(pulls[0][2])} pages); snapshot runs: "
                  + ", ".join(ms(s) + " ms" for s in snaps))
    console.print(table("targets", ("target", "measured", ""), [
        (f"pull {args.events:,} events < {TARGET_PULL_S:.0f} s", f"{pull_s:.2f} s",
         verdict(pull_s < TARGET_PULL_S and pulled == args.events)),
        (f"snapshot of {args.notes:,} notes < {TARGET_SNAPSHOT_S:.0f} s", f"{snap_s:.2f} s",
         verdict(snap_s < TARGET_SNAPSHOT_S and n_notes == args.notes)),
    ]))
    console.print(f"total bench time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
