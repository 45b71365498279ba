"""Push throughput and latency: `set` ops (creations and updates) in batches of 1, 100 and
1000, and `text` ops (pycrdt Yjs updates, base64), against a real `syncd serve` over HTTP,
side by side with PostgreSQL COPYing the same event rows into a scratch `events` table.

    python -m bench.push [--database-url URL] [--scale 1.0]

Targets (issue 2): ≥ 20,000 set ops/s in 1000-op batches on 2 cores; a 100-note push
(creations) in under 50 ms.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc, Text

from bench.common import (
    CopyBaseline,
    CopyResult,
    Device,
    EventRows,
    bench_env,
    check_applied,
    console,
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

    @property
    def rate(self) -> float:
        return self.ops / self.seconds


def yjs_update(words: str) -> bytes:
    doc: Doc[Any] = Doc()
    text = doc.get("body", type=Text)
    text += words
    return doc.get_update()


def scenario(dev: Device, rows: EventRows, baseline: CopyBaseline, name: str, batch: int,
             n_batches: int, make: Callable[[int], dict[str, Any]]) -> Run:
    """Push n_batches batches of `batch` ops built by make(i), then COPY the same rows."""
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

    copy = baseline.run([rows.from_ops(ops, payload) for ops in batches])
    return Run(name, batch, batch * n_batches, seconds, latencies, copy)


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

            runs.append(scenario(dev, rows, baseline, "set, create", batch, n(count), create))
            runs.append(scenario(dev, rows, baseline, "set, update", batch, n(count), update))
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

    out = []
    for r in runs:
        out.append((
            r.name, str(r.batch), str(r.ops), rate(r.rate), ms(pct(r.latencies, 50)),
            ms(pct(r.latencies, 95)), rate(r.copy.rate), ms(pct(r.copy.latencies, 50)),
            ratio(r.rate, r.copy.rate),
        ))
    console.print(table(
        "push: syncd (HTTP, one device, sequential) vs COPY of the same event rows",
        ("ops", "batch", "n", "ops/s", "p50 ms", "p95 ms", "COPY rows/s", "COPY p50 ms",
         "syncd ÷ COPY"), out))

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
