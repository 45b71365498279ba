"""Push throughput and latency: `set` ops (creations and updates) in batches of 1, 100 and
1000, 1000-op batches of title updates carrying `base` onto notes with a body (an offline
device's edits as the JavaScript client sends them), and `text` ops (pycrdt Yjs updates,
base64), against a real `syncd serve` over HTTP, side by side with PostgreSQL COPYing the
same event rows into a scratch `events` table, and, for `set` creations and updates, with
the floor: PostgreSQL alone making every write the batch needs (ProjectionFloor).

    python -m bench.push [--database-url URL] [--scale 1.0]

Targets: ≥ 20,000 set ops/s in 1000-op batches on 2 cores; a 100-note push
(creations) in under 50 ms.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import psycopg
from pycrdt import Doc, Text

from bench.common import (
    EVENT_COLS,
    CopyBaseline,
    CopyResult,
    Device,
    EventRows,
    bench_env,
    check_applied,
    console,
    copy_buffer,
    machine,
    ms,
    new_id,
    parser,
    pct,
    rate,
    ratio,
    table,
    verdict,
)
from syncd.store import NOTE_ROWS  # syncd's own rows-from-JSON statement part

TARGET_SET_1000 = 20_000  # set ops/s, 1000-op batches
TARGET_PUSH_100_MS = 50.0  # a 100-note push


@dataclass
class Run:
    name: str
    batch: int
    ops: int
    seconds: float
    latencies: list[float]
    copy: CopyResult
    floor: CopyResult | None = None

    @property
    def rate(self) -> float:
        return self.ops / self.seconds


class ProjectionFloor:
    """What PostgreSQL alone takes for the writes a batch of `set` ops must make: lock the
    batch's notes (as syncd does, FOR UPDATE in id order), COPY its event rows, and insert
    or update its notes' projection rows with syncd's own statement (store.py), from a
    JSON document built before timing; one committed transaction per batch, into scratch
    copies of `events` and `notes` (same columns, search vector, indexes). No HTTP, no
    Python per op, no device or log-head rows: a floor, not a rival implementation."""

    def __init__(self, url: str, user_id: str) -> None:
        self.conn = psycopg.connect(url)
        self.conn.execute("SET plan_cache_mode = force_custom_plan")  # as syncd's (db.py)
        self.user_id = user_id
        self.rows: dict[str, dict[str, Any]] = {}  # note id → its projection row so far
        self.op_id = 50_000_000
        self.conn.execute("DROP TABLE IF EXISTS bench_floor_events, bench_floor_notes")
        self.conn.execute("CREATE TABLE bench_floor_events (LIKE events INCLUDING ALL)")
        self.conn.execute("CREATE TABLE bench_floor_notes (LIKE notes INCLUDING ALL)")
        self.conn.commit()

    def _row(self, op: dict[str, Any]) -> dict[str, Any]:
        self.op_id += 1
        row = self.rows.setdefault(op["id"], {
            "id": op["id"], "owner_id": self.user_id, "project_id": None, "title": "",
            "tags": [], "pinned": False, "favorite": False, "deleted": False, "body": "",
            "body_state": None, "word_count": 0, "clocks": {}, "version": 0, "writers": {},
            "meta": {}})
        for name, value in op["fields"].items():
            row[name] = value
            row["clocks"][name] = op["hlc"]
            row["writers"][name] = self.op_id
        row["version"] = self.op_id
        return dict(row)

    def run(self, batches: list[list[dict[str, Any]]],
            events: list[list[tuple[Any, ...]]]) -> CopyResult:
        updates = [any(op["id"] in self.rows for op in ops) for ops in batches]
        docs = [msgspec.json.encode([self._row(op) for op in ops]).decode() for ops in batches]
        ids = ["{" + ",".join(sorted(op["id"] for op in ops)) + "}" for ops in batches]
        bufs = [copy_buffer(ev) for ev in events]
        cols = "id, owner_id, project_id, title, tags, pinned, favorite, deleted, body, "\
               "body_state, word_count, clocks, version, writers, meta"
        lat: list[float] = []
        total = time.perf_counter()
        for doc, id_array, buf, update in zip(docs, ids, bufs, updates, strict=True):
            t0 = time.perf_counter()
            with self.conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM (SELECT id, clocks, writers FROM"
                            " bench_floor_notes WHERE id = ANY(%s::uuid[]) ORDER BY id"
                            " FOR UPDATE) locked", (id_array,))
                with cur.copy(f"COPY bench_floor_events ({EVENT_COLS}) FROM STDIN") as cp:
                    cp.write(buf)
                if update:
                    cur.execute(f"""UPDATE bench_floor_notes n SET title = v.title,
                        tags = v.tags, project_id = v.project_id, pinned = v.pinned,
                        favorite = v.favorite, deleted = v.deleted, clocks = v.clocks,
                        version = v.version, writers = v.writers, meta = v.meta,
                        updated_at = now()
                        FROM {NOTE_ROWS} WHERE n.id = v.id""", (doc,))
                else:
                    cur.execute(f"INSERT INTO bench_floor_notes ({cols})"
                                f" SELECT * FROM {NOTE_ROWS}", (doc,))
            self.conn.commit()
            lat.append(time.perf_counter() - t0)
        return CopyResult(sum(map(len, batches)), time.perf_counter() - total, lat)

    def close(self) -> None:
        self.conn.execute("DROP TABLE IF EXISTS bench_floor_events, bench_floor_notes")
        self.conn.commit()
        self.conn.close()


def yjs_update(words: str) -> bytes:
    doc: Doc[Any] = Doc()
    text = doc.get("body", type=Text)
    text += words
    return doc.get_update()


def scenario(dev: Device, rows: EventRows, baseline: CopyBaseline, name: str, batch: int,
             n_batches: int, make: Callable[[int], dict[str, Any]],
             floor: ProjectionFloor | None = None) -> Run:
    """Push n_batches batches of `batch` ops built by make(i), then COPY the same rows (and,
    given a floor, make the same writes with PostgreSQL alone)."""
    batches = [[make(b * batch + i) for i in range(batch)] for b in range(n_batches)]
    bodies = [dev.push_body(ops) for ops in batches]  # encoded before timing
    latencies = []
    t0 = time.perf_counter()
    for ops, body in zip(batches, bodies, strict=True):
        dt, resp = dev.push_raw(body)
        check_applied(resp, len(ops))
        latencies.append(dt)
    seconds = time.perf_counter() - t0

    def payload(op: dict[str, Any]) -> bytes | None:
        return base64.b64decode(op["update"]) if op["kind"] == "text" else None

    event_rows = [rows.from_ops(ops, payload) for ops in batches]
    copy = baseline.run(event_rows)
    floor_result = floor.run(batches, [ev for ev, _ in event_rows]) if floor else None
    return Run(name, batch, batch * n_batches, seconds, latencies, copy, floor_result)


def main() -> int:
    p = parser(__doc__ or "")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply the number of batches per scenario (default 1.0)")
    args = p.parse_args()

    def n(count: int) -> int:
        return max(2, int(count * args.scale))

    started = time.perf_counter()
    with bench_env(args) as env:
        console.print(f"[bold]bench.push[/bold] — {machine(env)}")
        dev = env.device()
        rows = EventRows(dev.user_id, dev.device_id)
        baseline = CopyBaseline(env.url)
        floor = ProjectionFloor(env.url, dev.user_id)
        # Warm up: connections, pool, imports, plan caches.
        for _ in range(20):
            dev.push([dev.set_op(new_id(), title="warm-up")])
        warm = [new_id() for _ in range(200)]
        dev.push([dev.set_op(i, title="warm-up") for i in warm])
        dev.push([dev.set_op(i, title="warm-up 2") for i in warm])

        runs: list[Run] = []
        for batch, count in ((1, 300), (100, 40), (1000, 15)):
            ids = [new_id() for _ in range(batch * n(count))]

            def create(i: int, ids: list[str] = ids) -> dict[str, Any]:
                return dev.set_op(ids[i], title=f"Note {i}", tags=["bench", "x"],
                                  pinned=i % 2 == 0)

            def update(i: int, ids: list[str] = ids) -> dict[str, Any]:
                return dev.set_op(ids[i], title=f"Note {i} (edited)", favorite=True)

            runs.append(scenario(dev, rows, baseline, "set, create", batch, n(count), create,
                                 floor))
            runs.append(scenario(dev, rows, baseline, "set, update", batch, n(count), update,
                                 floor))
        # An offline device's title edits as the JavaScript client sends them
        # (bench.js_browser): each op carries the `base` it was made at (the log's head
        # when it last pulled), onto notes that have a tag and a Yjs body of 150
        # characters.
        ids = [new_id() for _ in range(1000 * n(10))]
        for k in range(0, len(ids), 1000):
            dev.push([dev.set_op(i, title=f"Note {k + j}", tags=[f"t{j % 7}"])
                      for j, i in enumerate(ids[k:k + 1000])])
            dev.push([dev.text_op(i, base64.b64encode(yjs_update(
                f"The body of note {k + j}, a sentence or two long. " * 3)).decode())
                for j, i in enumerate(ids[k:k + 1000])])
        _, status = dev.get("/v1/sync/status")

        def offline(i: int, ids: list[str] = ids, base: int = status["cursor"],
                    ) -> dict[str, Any]:
            return {**dev.set_op(ids[i], title=f"Offline {i}"), "base": base}

        runs.append(scenario(dev, rows, baseline, "set, update, base + body", 1000, n(10),
                             offline))
        # Text: each op is a Yjs update (made with pycrdt) to an existing note's body.
        for batch, count in ((1, 200), (100, 20), (1000, 5)):
            ids = [new_id() for _ in range(batch * n(count))]
            for k in range(0, len(ids), 1000):
                dev.push([dev.set_op(i, title="text target") for i in ids[k:k + 1000]])
            updates = [base64.b64encode(yjs_update(f"hello world {i} lorem ipsum dolor"))
                       .decode() for i in range(len(ids))]

            def text(i: int, ids: list[str] = ids, updates: list[str] = updates,
                     ) -> dict[str, Any]:
                return dev.text_op(ids[i], updates[i])

            runs.append(scenario(dev, rows, baseline, "text", batch, n(count), text))
        baseline.close()
        floor.close()

    out = []
    for r in runs:
        out.append((
            r.name, str(r.batch), str(r.ops), rate(r.rate), ms(pct(r.latencies, 50)),
            ms(pct(r.latencies, 95)), rate(r.copy.rate), ms(pct(r.copy.latencies, 50)),
            ratio(r.rate, r.copy.rate),
            rate(r.floor.rate) if r.floor else "-",
            ms(pct(r.floor.latencies, 50)) if r.floor else "-",
            ratio(r.rate, r.floor.rate) if r.floor else "-",
        ))
    console.print(table(
        "push: syncd (HTTP, one device, sequential) vs COPY of the same event rows, and vs"
        " the floor (PostgreSQL alone making the batch's writes: lock, events, projection)",
        ("ops", "batch", "n", "ops/s", "p50 ms", "p95 ms", "COPY rows/s", "COPY p50 ms",
         "syncd ÷ COPY", "floor ops/s", "floor p50 ms", "syncd ÷ floor"), out))

    set1000 = next(r for r in runs if r.name == "set, create" and r.batch == 1000)
    upd1000 = next(r for r in runs if r.name == "set, update" and r.batch == 1000)
    create100 = next(r for r in runs if r.name == "set, create" and r.batch == 100)
    p50 = pct(create100.latencies, 50) * 1000
    p95 = pct(create100.latencies, 95) * 1000
    console.print(table("targets", ("target", "measured", ""), [
        (f"set ops/s, 1000-op batches ≥ {TARGET_SET_1000:,} (creations)", rate(set1000.rate),
         verdict(set1000.rate >= TARGET_SET_1000)),
        (f"set ops/s, 1000-op batches ≥ {TARGET_SET_1000:,} (updates)", rate(upd1000.rate),
         verdict(upd1000.rate >= TARGET_SET_1000)),
        (f"100-note push < {TARGET_PUSH_100_MS:.0f} ms (p50)", f"{p50:.1f} ms",
         verdict(p50 < TARGET_PUSH_100_MS)),
        (f"100-note push < {TARGET_PUSH_100_MS:.0f} ms (p95)", f"{p95:.1f} ms",
         verdict(p95 < TARGET_PUSH_100_MS)),
    ]))
    console.print(f"total bench time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
