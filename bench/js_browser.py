"""The JavaScript SDK in headless Chromium against a real `syncd serve`: a new device
bootstraps a snapshot of N notes into IndexedDB, applies N pulled events, and pushes N
queued offline edits; and the SDK's minified, gzipped size without yjs. The browser side
is clients/js/bench/browser.mjs (driven by playwright-core); Chromium comes from CHROMIUM
or PATH (`apt-get install chromium`).

    python -m bench.js_browser [--notes 10000]

Targets (the JavaScript client): bootstrap < 2 s, apply < 1 s, push < 2 s, size < 40 kB.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess

from bench.common import bench_env, console, machine, parser, table, verdict
from tests.node_env import CHROMIUM_HELP, chromium_binary, ensure_js_client, node_binary

TARGETS_MS = {"bootstrapMs": 2000, "applyEventsMs": 1000, "pushMs": 2000}
SIZE_TARGET = 40_000


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--notes", type=int, default=10_000)
    args = p.parse_args()
    chromium = chromium_binary()
    if chromium is None:
        raise SystemExit(CHROMIUM_HELP)
    js = ensure_js_client()
    size = len(gzip.compress((js / "dist" / "browser" / "syncd-client.min.js").read_bytes()))
    with bench_env(args) as env:
        proc = subprocess.run(
            [node_binary(), "bench/browser.mjs", "--notes", str(args.notes)], cwd=js,
            env={**os.environ, "SYNCD_URL": env.server.base_url, "CHROMIUM": chromium},
            capture_output=True, text=True, check=True, timeout=1800)
        f = json.loads(proc.stdout.strip().splitlines()[-1])
        n = f"{args.notes:,}"
        rows = [
            [f"bootstrap: snapshot of {n} notes into IndexedDB (its fetch alone "
             f"{f['snapshotFetchMs']:.0f} ms)", f"{f['bootstrapMs']:.0f}",
             verdict(f["bootstrapMs"] < TARGETS_MS["bootstrapMs"])],
            [f"apply {f['eventsApplied']:,} pulled events (fetched in {f['pullFetchMs']:.0f} ms)",
             f"{f['applyEventsMs']:.0f}",
             verdict(f["applyEventsMs"] < TARGETS_MS["applyEventsMs"])],
            [f"queue {f['queued']:,} offline edits (one store transaction each)",
             f"{f['queueMs']:.0f}", "—"],
            [f"push {f['pushed']:,} queued edits", f"{f['pushMs']:.0f}",
             verdict(f["pushMs"] < TARGETS_MS["pushMs"])],
            ["SDK minified + gzipped, without yjs (bytes)", str(size), verdict(size < SIZE_TARGET)],
        ]
        console.print(table(f"bench.js_browser: {n} notes", ["step", "ms", "target"], rows))
        console.print(machine(env))


if __name__ == "__main__":
    main()
