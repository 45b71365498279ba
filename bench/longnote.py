"""A long chapter: what a note with a long history costs, as it grows.

    python -m bench.longnote [--database-url URL] [--ops 20000] [--words 3]

One user writes one note through the push API in 1000-op batches of `text` ops, each
appending `--words` words (as an offline device's queued keystrokes arrive), until the
note has `--ops` text ops (20,000 ops of 3 words: ~300 kB). Measured against a real
`syncd serve` over HTTP:

- the push of 1000 text ops, at the start, the middle and the end of the note's growth;
- `GET /v1/notes/{id}/at?seq=N` at the middle and the end (the note rebuilt from the log);
- the first and the last page of `GET /v1/notes/{id}/history` (50 entries with text diffs);
- `GET /v1/stats?period=all` (words written per day);
- REST writes to the note: PATCH `pinned`, `title`, and `body` (one word appended, sent
  as the whole text, which the server diffs against the document);
- `syncd rebuild --verify` of the whole database (one process, startup included).

Each request runs on the server's event loop or beside it, so a slow one here stalls
every other client of the node: the figures are what one writer's long chapter can cost
everyone. No target is set; bench/README.md records what was measured.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from typing import Any

from pycrdt import Doc, Text

from bench.common import (
    Device,
    bench_env,
    check_applied,
    console,
    machine,
    ms,
    new_id,
    parser,
    table,
)

BATCH = 1000
REPEAT = 3


def best(get: Any) -> float:
    """The fastest of REPEAT runs of get() (seconds): the request's cost, not the noise."""
    return min(get()[0] for _ in range(REPEAT))


def patch(dev: Device, note: str, fields: dict[str, Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    r = dev.http.patch(f"/v1/notes/{note}", json=fields, headers=dev.headers)
    dt = time.perf_counter() - t0
    if r.status_code != 200:
        raise Refused(f"{r.status_code} {r.json()['error']['code']}")
    return dt, r


class Refused(Exception):
    pass


def main() -> int:
    p = parser(__doc__ or "")
    p.add_argument("--ops", type=int, default=20_000)
    p.add_argument("--words", type=int, default=3)
    args = p.parse_args()
    with bench_env(args) as env:
        console.print(f"[bold]bench.longnote[/bold] — {machine(env)}")
        dev = env.device()
        note = new_id()
        check_applied(dev.push([dev.set_op(note, title="Chapter one")])[1], 1)
        doc: Doc[Any] = Doc()
        text = doc.get("body", type=Text)
        pushes: list[tuple[int, int, float]] = []  # (ops before, chars after, seconds)
        marks = {BATCH, args.ops // 2, args.ops}
        done = 0
        while done < args.ops:
            ops = []
            for _ in range(BATCH):
                before = doc.get_state()
                text += " word" * args.words
                ops.append(dev.text_op(note, base64.b64encode(doc.get_update(before)).decode()))
            dt, resp = dev.push(ops)
            check_applied(resp, BATCH)
            done += BATCH
            if done in marks:
                pushes.append((done - BATCH, len(str(text)), dt))
        _, status = dev.get("/v1/sync/status")
        head = status["cursor"]
        _, current = dev.get(f"/v1/notes/{note}")
        assert current["body"] == str(text), "the stored body is not what was written"
        version = current["version"]
        rows: list[list[str]] = [
            [f"push {BATCH} text ops onto {before:,} ({chars:,} chars after)", ms(dt)]
            for before, chars, dt in pushes]
        for seq in (head // 2, head):
            rows.append([f"at?seq={seq:,}",
                         ms(best(lambda s=seq: dev.get(f"/v1/notes/{note}/at", seq=s)))])
        rows.append(["history, first page",
                     ms(best(lambda: dev.get(f"/v1/notes/{note}/history")))])
        rows.append(["history, last page", ms(best(
            lambda: dev.get(f"/v1/notes/{note}/history", cursor=version - 50)))])
        rows.append(["stats?period=all", ms(best(lambda: dev.get("/v1/stats", period="all")))])
        edits = iter(range(1_000_000))
        for what, fields in (
                ("PATCH pinned", lambda: {"pinned": next(edits) % 2 == 0}),
                ("PATCH title", lambda: {"title": f"Chapter {next(edits)}"}),
                ("PATCH body (a word appended: a diff of the whole text)",
                 lambda: {"body": str(text) + f" end{next(edits)}"})):
            try:
                rows.append([what, ms(best(lambda f=fields: patch(dev, note, f())))])
            except Refused as e:  # a whole text past the request body limit
                rows.append([what, f"refused: {e}"])
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "syncd", "rebuild", "--verify"],
                           env={**os.environ, "DATABASE_URL": env.url}, capture_output=True,
                           text=True, timeout=3600)
        rebuild_s = time.perf_counter() - t0
        if r.returncode != 0:
            console.print(r.stdout[-2000:], r.stderr[-2000:])
            return 1
        rows.append(["syncd rebuild --verify (whole database)", ms(rebuild_s)])
        console.print(table(
            f"One note, {args.ops:,} text ops of {args.words} words "
            f"({len(str(text)):,} chars); requests: best of {REPEAT}, ms",
            ["what", "ms"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
