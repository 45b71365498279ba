"""Another user's note list while one user runs parallel heavy searches.

One user owns notes with long bodies and keeps `--parallel` (default 60) searches over
them in flight; another user lists their notes (`GET /v1/notes`) one request at a time.
Prints that user's list latency (p50/p95/max) alone and during the storm (target: p95 under
50 ms), and what the fairness gate did with the searches (syncd/fairness.py).

    python -m bench.fairness [--parallel 60] [--lists 200] [--notes 30]
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections import Counter

import httpx

from bench.common import bench_env, console, new_id, parser


def p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000


def main() -> None:
    ap = parser(__doc__ or "")
    ap.add_argument("--parallel", type=int, default=60)
    ap.add_argument("--lists", type=int, default=200)
    ap.add_argument("--notes", type=int, default=30)
    args = ap.parse_args()
    with bench_env(args) as env:
        greedy, other = env.device("greedy"), env.device("other")
        filler = " ".join(f"word{i}" for i in range(2000))
        for i in range(args.notes):
            r = greedy.http.post("/v1/notes", headers=greedy.headers, json={
                "title": f"Chapter {i}", "body": f"{filler} lantern {filler}"})
            r.raise_for_status()
        other.push([other.set_op(new_id(), title=f"mine {i}") for i in range(50)])

        async def run() -> None:
            limits = httpx.Limits(max_connections=args.parallel + 10)
            async with httpx.AsyncClient(base_url=env.server.base_url, timeout=120,
                                         limits=limits) as c:
                async def lists() -> list[float]:
                    out = []
                    for _ in range(args.lists):
                        t0 = time.perf_counter()
                        r = await c.get("/v1/notes", headers=other.headers)
                        out.append(time.perf_counter() - t0)
                        r.raise_for_status()
                    return out

                alone = await lists()
                stop = asyncio.Event()
                outcomes: Counter[int] = Counter()

                async def searcher() -> None:
                    while not stop.is_set():
                        r = await c.get("/v1/search", headers=greedy.headers,
                                        params={"q": "lantern", "limit": 100})
                        outcomes[r.status_code] += 1
                        if r.status_code == 429:
                            await asyncio.sleep(float(r.headers.get("retry-after", "1")))

                workers = [asyncio.create_task(searcher()) for _ in range(args.parallel)]
                await asyncio.sleep(1)
                during = await lists()
                stop.set()
                await asyncio.gather(*workers)
                text = (await c.get("/metrics")).text
            gate = dict(re.findall(r'^syncd_heavy_requests_total\{decision="(\w+)"\} (\S+)$',
                                   text, re.M))
            for name, xs in (("alone", alone), ("during the storm", during)):
                console.print(f"other user's GET /v1/notes {name}: p50 {p(xs, 0.5):.1f} ms, "
                              f"p95 {p(xs, 0.95):.1f} ms, max {max(xs) * 1000:.1f} ms, "
                              f"mean {statistics.mean(xs) * 1000:.1f} ms (n={len(xs)})")
            console.print(f"{args.parallel} parallel searches: responses {dict(outcomes)}; "
                          f"gate decisions {gate}")

        asyncio.run(run())


if __name__ == "__main__":
    main()
