"""REST API latency under load: note read, note list (50), search and note PATCH (title,
and body) with 50 concurrent clients against a real `syncd serve`, over HTTP keep-alive.

    python -m bench.api [--database-url URL] [--users 10] [--notes 1000] [--clients 50]
                        [--duration 10] [--explain]

Seed (through the push API, 1000-op batches): per user one project and `--notes` notes
with a title, 1–3 tags and a body of `--words` words (a Yjs `text` op) drawn from a
Zipf-distributed vocabulary, so search terms have realistic selectivity. Then `--clients`
asyncio clients (one aiohttp session and one device token each; `clients / users` devices
per user) each issue requests back to back (closed loop) for `--duration` seconds per
operation. Latency = request sent → response body read, per request.

Targets: p95 < 20 ms for reads (read, list, search), < 40 ms for writes (PATCH),
on 2 cores; the seed specification asks p95 < 100 ms.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
import psycopg
import uvloop
from pycrdt import Doc, Text
from rich.console import Console

from bench.common import (
    Device,
    Env,
    bench_env,
    check_applied,
    console,
    machine,
    ms,
    new_id,
    parser,
    pct,
    rate,
    table,
    verdict,
)

TARGET_READ_MS = 20.0
TARGET_WRITE_MS = 40.0
SPEC_MS = 100.0
CORES = 2
TAGS = ["work", "home", "ideas", "draft", "todo", "research", "journal", "meeting", "book",
        "travel", "recipe", "code", "music", "health", "finance", "garden", "film", "poem"]
_dec = msgspec.json.Decoder()


# --- data -----------------------------------------------------------------------------------


class Words:
    """A deterministic vocabulary of pseudo-words with Zipf (s = 1) frequencies."""

    def __init__(self, size: int = 5000, seed: int = 5) -> None:
        rnd = random.Random(seed)
        syl = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "da", "fi", "go", "hu", "ja",
               "pe", "qui", "ro", "su", "ti", "an", "el", "or", "um", "is", "ba", "ze", "cho"]
        seen: set[str] = set()
        while len(seen) < size:
            seen.add("".join(rnd.choice(syl) for _ in range(rnd.randint(2, 4))))
        self.words = sorted(seen, key=lambda w: rnd.random())  # rank order
        acc, self.cum = 0.0, []
        for r in range(size):
            acc += 1 / (r + 1)
            self.cum.append(acc)
        self.rnd = random.Random(seed + 1)

    def sample(self, k: int) -> list[str]:
        return self.rnd.choices(self.words, cum_weights=self.cum, k=k)

    def query(self) -> str:
        """A search as users type it: one or two mid-frequency words, or a prefix."""
        kind = self.rnd.random()
        word = self.words[self.rnd.randint(20, 2000)]
        if kind < 0.5:
            return word + " "  # whole word (a trailing space: no prefix match)
        if kind < 0.75:
            return f"{word} {self.words[self.rnd.randint(5, 500)]} "
        return word[:4]  # typing: prefix match of the last word


def body_text(words: Words, n: int) -> str:
    out, ws = [], words.sample(n)
    for i in range(0, n, 12):  # sentences of 12 words
        s = " ".join(ws[i:i + 12])
        out.append(s[:1].upper() + s[1:] + ".")
    return " ".join(out)


def yjs_update(body: str) -> str:
    doc: Doc[Any] = Doc()
    text = doc.get("body", type=Text)
    text += body
    return base64.b64encode(doc.get_update()).decode()


@dataclass
class Seeded:
    devices: list[Device]  # one per user (the seeding device)
    notes: dict[str, list[str]]  # user id → note ids
    seconds: float
    ops: int


def seed(env: Env, users: int, notes: int, n_words: int, words: Words) -> Seeded:
    """Users, a project each and their notes, pushed in 1000-op batches."""
    t0 = time.perf_counter()
    devs = [env.device() for _ in range(users)]
    ids: dict[str, list[str]] = {}
    total = 0
    for dev in devs:
        project = new_id()
        _, resp = dev.push([dev.set_op(project, entity="project", title="Bench project")])
        check_applied(resp, 1)
        mine = [new_id() for _ in range(notes)]
        ids[dev.user_id] = mine
        rnd = random.Random(dev.user_id)
        sets = [dev.set_op(i, title=" ".join(words.sample(rnd.randint(2, 6))).capitalize(),
                           tags=rnd.sample(TAGS, rnd.randint(1, 3)),
                           project_id=project if rnd.random() < 0.7 else None,
                           pinned=rnd.random() < 0.05)
                for i in mine]
        texts = [dev.text_op(i, yjs_update(body_text(words, n_words))) for i in mine]
        for ops in (sets, texts):
            for k in range(0, len(ops), 1000):
                _, resp = dev.push(ops[k:k + 1000])
                check_applied(resp, len(ops[k:k + 1000]))
        total += 1 + 2 * notes
    with psycopg.connect(env.url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # the steady state autovacuum would reach
    return Seeded(devs, ids, time.perf_counter() - t0, total)


# --- load -----------------------------------------------------------------------------------


@dataclass
class Client:
    http: aiohttp.ClientSession
    headers: dict[str, str]
    notes: list[str]
    rnd: random.Random
    n: int = 0


@dataclass
class Result:
    name: str
    target_ms: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    client_cpu: float = 0.0  # seconds of this process's CPU
    server_cpu: float = 0.0  # seconds of the syncd process's CPU
    pg_cpu: float = 0.0  # seconds of CPU of the bench database's PostgreSQL backends
    machine_cpu: float = 0.0  # seconds of CPU of the whole machine (all processes)
    solo: list[float] = field(default_factory=list)  # one client alone

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


# (method, path, params, json body) for one request of a client
Make = Callable[[Client, Words], tuple[str, str, dict[str, Any] | None, bytes | None]]


def op_read(c: Client, w: Words) -> tuple[str, str, dict[str, Any] | None, bytes | None]:
    return "GET", f"/v1/notes/{c.rnd.choice(c.notes)}", None, None


def op_list(c: Client, w: Words) -> tuple[str, str, dict[str, Any] | None, bytes | None]:
    return "GET", "/v1/notes", {"limit": 50}, None


def op_search(c: Client, w: Words) -> tuple[str, str, dict[str, Any] | None, bytes | None]:
    return "GET", "/v1/search", {"q": w.query()}, None


def op_patch_title(c: Client, w: Words,
                   ) -> tuple[str, str, dict[str, Any] | None, bytes | None]:
    c.n += 1
    body = msgspec.json.encode({"title": f"{' '.join(w.sample(3))} (edit {c.n})",
                                "tags": c.rnd.sample(TAGS, 2)})
    return "PATCH", f"/v1/notes/{c.rnd.choice(c.notes)}", None, body


def op_patch_body(c: Client, w: Words,
                  ) -> tuple[str, str, dict[str, Any] | None, bytes | None]:
    c.n += 1
    body = msgspec.json.encode({"body": f"Edit {c.n}: " + " ".join(w.sample(40))})
    return "PATCH", f"/v1/notes/{c.rnd.choice(c.notes)}", None, body


OPS: list[tuple[str, Make, float]] = [
    ("read GET /v1/notes/{id}", op_read, TARGET_READ_MS),
    ("list GET /v1/notes?limit=50", op_list, TARGET_READ_MS),
    ("search GET /v1/search?q=", op_search, TARGET_READ_MS),
    ("PATCH title+tags", op_patch_title, TARGET_WRITE_MS),
    ("PATCH body (40 words)", op_patch_body, TARGET_WRITE_MS),
]


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds (Linux /proc); 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> float:
    """CPU seconds all processes of the machine have used (busy time in /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


class PgCpu:
    """CPU of the PostgreSQL backends connected to the bench database."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.start: dict[int, float] = {}

    def pids(self) -> list[int]:
        return [r[0] for r in self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()").fetchall()]

    def begin(self) -> None:
        self.start = {p: proc_cpu(p) for p in self.pids()}

    def end(self) -> float:
        pids = set(self.pids()) | set(self.start)
        return sum(max(0.0, proc_cpu(p) - self.start.get(p, 0.0)) for p in pids)


async def drive(clients: list[Client], words: Words, make: Make, seconds: float,
                out: Result | None, think: float = 0.0) -> None:
    """Every client sends requests back to back (or `think` s apart, randomised ±50 %)
    until the deadline; latencies into out."""
    deadline = time.perf_counter() + seconds

    async def one(c: Client) -> None:
        while time.perf_counter() < deadline:
            method, path, params, body = make(c, words)
            t0 = time.perf_counter()
            async with c.http.request(method, path, params=params, data=body,
                                      headers=c.headers) as r:
                text = await r.text()
            dt = time.perf_counter() - t0
            if think:
                await asyncio.sleep(think * (0.5 + c.rnd.random()))
            if out is None:
                continue
            if r.status == 200:
                out.latencies.append(dt)
            else:
                out.errors += 1
                if out.errors <= 3:
                    console.print(f"[red]{out.name}: {r.status} {text[:200]}[/red]")

    await asyncio.gather(*(one(c) for c in clients))


async def load(env: Env, devices: list[tuple[Device, list[str]]], words: Words,
               duration: float, solo_n: int, think: float,
               ops: list[tuple[str, Make, float]]) -> list[Result]:
    assert env.server.proc is not None
    server_pid = env.server.proc.pid
    pg = PgCpu(env.url)
    # aiohttp, not httpx: the load generator shares the two cores with the server, and
    # aiohttp spends about a third of httpx's CPU per request.
    timeout = aiohttp.ClientTimeout(total=60)
    clients = [Client(aiohttp.ClientSession(env.server.base_url, timeout=timeout,
                                            connector=aiohttp.TCPConnector(limit=1)),
                      {**d.headers}, notes, random.Random(i))
               for i, (d, notes) in enumerate(devices)]
    try:
        # Warm up: connections, the pool, plan caches.
        for _, make, _ in ops:
            await drive(clients, words, make, 1.0, None)
        results = []
        for name, make, target in ops:
            res = Result(name, target)
            # Unloaded service time: one client alone.
            solo = Result(name, target)
            for _ in range(solo_n):
                method, path, params, body = make(clients[0], words)
                t0 = time.perf_counter()
                async with clients[0].http.request(method, path, params=params, data=body,
                                                   headers=clients[0].headers) as r:
                    await r.read()
                if r.status == 200:
                    solo.latencies.append(time.perf_counter() - t0)
            res.solo = solo.latencies
            pg.begin()
            c0, s0, m0 = time.process_time(), proc_cpu(server_pid), machine_cpu()
            t0 = time.perf_counter()
            await drive(clients, words, make, duration, res, think)
            res.seconds = time.perf_counter() - t0
            res.client_cpu = time.process_time() - c0
            res.server_cpu = proc_cpu(server_pid) - s0
            res.machine_cpu = machine_cpu() - m0
            res.pg_cpu = pg.end()
            results.append(res)
            console.print(f"  {name}: {len(res.latencies):,} requests, "
                          f"{res.rps:,.0f}/s, p95 {ms(pct(res.latencies, 95))} ms")
        return results
    finally:
        for c in clients:
            await c.http.close()
        pg.conn.close()


# --- EXPLAIN --------------------------------------------------------------------------------


def explain(env: Env, user_id: str, words: Words) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the list and search queries exactly as syncd sends them."""
    from uuid import UUID

    from syncd import search
    from syncd.queries import Page, list_query

    page = Page(limit=50)  # GET /v1/notes?limit=50, as the bench asks it
    page.filter("n.deleted = %(deleted)s", deleted=False)
    list_sql, list_params = list_query(UUID(user_id), "note", page)
    word = words.words[100]
    parsed = search.parse(word + " ")
    assert parsed is not None
    with psycopg.connect(env.url) as conn:
        for name, sql, params in (
            ("list", list_sql, list_params),
            (f"search {word!r}", search.SQL, {"q": parsed.query, "qa": parsed.titles,
                                              "hit": parsed.hit, "u": user_id, "limit": 20,
                                              "deleted": False}),
        ):
            rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params).fetchall()
            console.print(f"[bold]EXPLAIN ANALYZE {name}[/bold]")
            for (line,) in rows:
                console.print(f"  {line}", markup=False, highlight=False)


# --- main -----------------------------------------------------------------------------------


def main() -> int:
    p = parser(__doc__ or "")
    p.add_argument("--users", type=int, default=10)
    p.add_argument("--notes", type=int, default=1000, help="notes per user")
    p.add_argument("--words", type=int, default=300, help="words per note body")
    p.add_argument("--clients", type=int, default=50, help="concurrent clients")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per operation")
    p.add_argument("--solo", type=int, default=100,
                   help="requests of one client alone per operation (unloaded latency)")
    p.add_argument("--think", type=float, default=0.0,
                   help="seconds each client waits between requests (default 0: closed loop "
                   "back to back); e.g. 0.1 offers at most clients/0.1 req/s")
    p.add_argument("--ops", default="",
                   help="only the operations whose name contains one of these comma-separated "
                   "words, e.g. 'search,PATCH title' (default: all)")
    p.add_argument("--explain", action="store_true",
                   help="print EXPLAIN ANALYZE of the list and search queries")
    args = p.parse_args()

    started = time.perf_counter()
    words = Words()
    with bench_env(args) as env:
        console.print(f"[bold]bench.api[/bold] — {machine(env)}")
        s = seed(env, args.users, args.notes, args.words, words)
        console.print(f"seeded {args.users} users × {args.notes} notes ({args.words} words) "
                      f"= {s.ops:,} ops in {s.seconds:.1f} s")
        # clients / users devices per user, each its own login (token).
        devices: list[tuple[Device, list[str]]] = []
        for i in range(args.clients):
            owner = s.devices[i % len(s.devices)]
            dev = Device.login(env.client(), owner.email, f"bench-{i}")
            devices.append((dev, s.notes[owner.user_id]))
        if args.explain:
            explain(env, s.devices[0].user_id, words)
        # uvloop, as the server runs: the load generator's CPU is the server's loss.
        wanted = [w for w in args.ops.split(",") if w]
        ops = [o for o in OPS if not wanted or any(w in o[0] for w in wanted)]
        results = uvloop.run(load(env, devices, words, args.duration, args.solo, args.think,
                                  ops))

    wide = Console(width=max(console.width, 150))
    rows, cpu = [], []
    for r in results:
        p95 = pct(r.latencies, 95) * 1000
        rows.append((
            r.name, f"{len(r.latencies):,}", rate(r.rps), ms(pct(r.latencies, 50)),
            f"{p95:.1f}", ms(pct(r.latencies, 99)), ms(max(r.latencies, default=0)),
            ms(pct(r.solo, 50)), str(r.errors), f"{r.target_ms:.0f}",
            verdict(p95 < r.target_ms), verdict(p95 < SPEC_MS),
        ))
        n = max(1, len(r.latencies))
        own = r.server_cpu + r.pg_cpu + r.client_cpu
        capacity = CORES * 1000 / (own * 1000 / n) if own else 0.0
        cpu.append((
            r.name, *(f"{c / r.seconds:.2f}" for c in (
                r.server_cpu, r.pg_cpu, r.client_cpu, r.machine_cpu - own)),
            f"{r.server_cpu * 1000 / n:.2f}", f"{r.pg_cpu * 1000 / n:.2f}",
            f"{r.client_cpu * 1000 / n:.2f}", rate(capacity),
            f"{max(0.0, args.clients / capacity - args.think) * 1000:.0f}" if capacity else "-",
        ))
    wide.print(table(
        f"REST API: {args.clients} clients (closed loop, keep-alive, think {args.think} s), "
        f"{args.duration:.0f} s "
        f"per operation; {args.users} users × {args.notes} notes; latencies in ms",
        ("operation", "n", "req/s", "p50", "p95", "p99", "max", "solo p50", "errors",
         "p95 target", "", f"spec {SPEC_MS:.0f}"), rows))
    console.print("solo p50: one client alone (no queueing).")
    wide.print(table(
        "where the CPU went: cores busy on average, and CPU ms per request",
        ("operation", "syncd", "pg", "client", "other", "syncd ms/req", "pg ms/req",
         "cli ms/req", f"{CORES}-core req/s", "Little ms"),
        cpu))
    console.print("syncd: the server process; PostgreSQL: the bench database's backends; "
                  "client: this load generator; other: everything else on the machine. The "
                  "last two columns: (syncd + pg + client) CPU per request → throughput if "
                  "nothing else ran, and by Little's law (N / X − think) the least mean latency "
                  "of N closed-loop clients at that throughput (0: not saturated).")
    console.print(f"total bench time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
