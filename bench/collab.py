"""Collaborative editing: N y-websocket clients editing D notes concurrently, against syncd
(`/v1/collab/{note_id}`, every update written to the log in PostgreSQL) and, in the same
run, against `pycrdt-websocket` (its `WebsocketServer` + ASGI app under uvicorn, in a
child process, documents in memory only) with the same workload.

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

Target (issue 3): syncd ÷ pycrdt-websocket ≥ 1 (edits/s), while persisting every update.
"""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.common import console, new_id, parser, ratio, table, verdict
from bench.fanout import machine_line
from bench.sockets import Cluster, Worker, cluster, pipe_recv, raise_nofile
from syncd import yproto

PIECE = "ab"
WORKERS = 2


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


class PycrdtServer:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.collab", "--serve-pycrdt"],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def url(self, room: str) -> str:
        return f"ws://127.0.0.1:{self.port}/{room}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- the client worker process ---------------------------------------------------------------


class Client:
    def __init__(self, note: int, url: str, expect: int, edits: int, seed: int) -> None:
        self.note = note
        self.url = url
        self.expect = expect  # final text length once every edit of the note arrived
        self.edits = edits
        self.rng = random.Random(seed)
        self.doc: Doc[Any] = Doc()
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
        await self.ws.send(yproto.encode_sync_step1(self.doc.get_state()))
        async with asyncio.timeout(30):
            await self.synced.wait()

    async def read(self) -> None:
        try:
            async for frame in self.ws:
                assert isinstance(frame, bytes)
                for msg in yproto.decode_frame(frame):
                    match msg:
                        case yproto.SyncStep1(sv):
                            await self.ws.send(
                                yproto.encode_sync_step2(self.doc.get_update(sv)))
                        case yproto.SyncStep2(update):
                            self.doc.apply_update(update)
                            self.synced.set()
                        case yproto.Update(update):
                            self.doc.apply_update(update)
                self.check()
        except ConnectionClosed as e:
            self.close_code = e.rcvd.code if e.rcvd else None
            self.converged.set()

    def check(self) -> None:
        if not self.converged.is_set() and len(self.text) >= self.expect:
            self.t_converged = time.monotonic()
            self.converged.set()

    async def edit_all(self) -> None:
        for _ in range(self.edits):
            before = self.doc.get_state()
            self.text.insert(self.rng.randint(0, len(self.text)), PIECE)
            await self.ws.send(yproto.encode_update(self.doc.get_update(before)))
            await asyncio.sleep(0)
        self.t_last_send = time.monotonic()
        self.check()


def collab_worker(conn: Connection, specs: list[tuple[int, str, int, int, int]]) -> None:
    raise_nofile()
    asyncio.run(_collab_worker(conn, specs))


async def _collab_worker(conn: Connection, specs: list[tuple[int, str, int, int, int]]) -> None:
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


def open_room(url: str) -> None:
    """Connect and sync one peer, then leave: the room exists before the clients come.
    (pycrdt-websocket 0.16 loses peers that connect concurrently to a room not yet
    started: they never get sync step 2. Done for both servers alike.)"""
    from websockets.sync.client import connect as connect_sync

    with connect_sync(url, compression=None, open_timeout=30) as ws:
        ws.send(yproto.encode_sync_step1(Doc().get_state()))
        deadline = time.monotonic() + 30
        while True:
            frame = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
            assert isinstance(frame, bytes)
            if any(isinstance(m, yproto.SyncStep2) for m in yproto.decode_frame(frame)):
                return


def run_workload(name: str, urls: Sequence[str], clients: int, edits: int,
                 seed: int) -> CollabRun:
    """clients spread round-robin over the notes' urls; returns once all converged."""
    notes = len(urls)
    per_note = [clients // notes + (1 if k < clients % notes else 0) for k in range(notes)]
    specs = [(i % notes, urls[i % notes], per_note[i % notes] * edits * len(PIECE), edits,
              seed + i) for i in range(clients)]
    for url in urls:
        open_room(url)
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
    args = p.parse_args()
    started = time.perf_counter()
    runs: list[CollabRun] = []
    stored: list[tuple[bool, float]] = []
    with cluster(args) as c:
        console.print(f"[bold]bench.collab[/bold] — {machine_line(c)}")
        node = c.server()
        (dev,) = c.user(node.base_url, 1)
        ref = PycrdtServer()
        try:
            for rnd in range(args.rounds):
                note_ids = [new_id() for _ in range(args.notes)]
                dev.push([dev.set_op(n, title=f"collab {k}") for k, n in enumerate(note_ids)])
                urls = [f"{node.ws_url}/v1/collab/{n}?token={dev.token}" for n in note_ids]
                r = run_workload("syncd", urls, args.clients, args.edits, seed=rnd * 1000)
                runs.append(r)
                stored.append(check_stored(c, node.base_url, dev.token, note_ids, r.texts))
                ref_urls = [ref.url(f"r{rnd}-{n}") for n in note_ids]
                runs.append(run_workload("pycrdt-websocket", ref_urls, args.clients,
                                         args.edits, seed=rnd * 1000))
        finally:
            ref.stop()

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
    syncd_runs = [r for r in runs if r.server == "syncd"]
    ref_runs = [r for r in runs if r.server != "syncd"]
    s_rate = sum(r.rate for r in syncd_runs) / len(syncd_runs)
    p_rate = sum(r.rate for r in ref_runs) / len(ref_runs)
    s_conv = sum(r.convergence for r in syncd_runs) / len(syncd_runs)
    p_conv = sum(r.convergence for r in ref_runs) / len(ref_runs)
    all_stored = all(ok for ok, _ in stored)
    console.print(table("syncd ÷ pycrdt-websocket (mean of rounds)", ("measure", "syncd",
                                                                      "pycrdt-websocket",
                                                                      "syncd ÷ pycrdt-ws"), [
        ("edits/s", f"{s_rate:,.0f}", f"{p_rate:,.0f}", ratio(s_rate, p_rate)),
        ("convergence ms", f"{s_conv * 1000:,.0f}", f"{p_conv * 1000:,.0f}",
         ratio(s_conv, p_conv)),
    ]))
    console.print(table("targets", ("target", "measured", ""), [
        ("syncd edits/s ≥ pycrdt-websocket", ratio(s_rate, p_rate), verdict(s_rate >= p_rate)),
        ("every client converged, equal texts",
         str(all(r.converged for r in runs)), verdict(all(r.converged for r in runs))),
        ("syncd DB bodies (snapshot) = clients' text",
         ", ".join(f"{ok} after {t * 1000:.0f} ms" for ok, t in stored), verdict(all_stored)),
    ]))
    console.print(f"total bench time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
