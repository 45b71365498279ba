"""bench.collab's two other workloads, run against each server in the same run:

- **long note**: one writer's E edits (default 50,000, the figure the target is set at) into
  one note, then a reader joins. The edits are made before the clock starts, by Yjs
  (`bench/node/long_writer.mjs`: insert "ab" at a random index, one transaction each,
  recording each transaction's update: the frame a y-websocket client sends after that
  edit); pycrdt's own random inserts cost O(length) each, and took tens of minutes for
  50,000 on 2 busy cores, which measured the writer rather than the servers. The same
  frames go to every server. The writer connects and syncs, sends the E update frames
  as fast as the server takes them (the socket's write buffer is the only pacing: a send
  waits while it is full), then asks for sync step 2 (the server answers messages in
  order, so by then every edit is applied); for syncd the bench also waits until the
  stored body equals the writer's text. Then a reader joins (the writer still connected:
  Hocuspocus unloads a document its last peer left): time to full document = connect →
  its text holds every edit (sync step 2 applied by the reader's pycrdt: the same client
  for every server), beside the server's CPU time meanwhile (/proc, 10 ms ticks: what the
  join cost the server, less shaken by a busy machine than the wall clock). Server peak
  memory = the most RSS of the server's process (read from /proc every 20 ms) from before
  the writer connects to after the reader has the document.
- **steady**: C clients over D notes (default 200 × 20), each making R edits/s (default
  5) for S seconds at its own random phase. Latency = edit sent → its arrival at each
  other client of the note, from the Yjs state vectors (each client records when each
  (client id, clock) was sent, and when it first saw it); p50, p99 and max over every
  (edit, receiver) pair. All clients' clocks are one machine's CLOCK_MONOTONIC.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import random
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from pycrdt import Doc, Text
from websockets.asyncio.client import ClientConnection, connect

from bench.common import console
from bench.sockets import Worker, cpu_s, pipe_recv, raise_nofile, rss_kib
from syncd import yproto
from tests.node_env import REPO, ensure_node_modules, node_binary

PIECE = "ab"
WORKERS = 2
NODE_SOURCES = REPO / "bench" / "node"
NODE_CACHE = REPO / ".cache" / "bench-node"


def state_vector(doc: Doc[Any]) -> dict[int, int]:
    """A document's state vector: client id → clock."""
    reader = yproto.Reader(doc.get_state())
    return {reader.var_uint(): reader.var_uint() for _ in range(reader.var_uint())}


class PeakRss:
    """The most RSS a process reaches while the block runs (sampled every 20 ms), KiB."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_kib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_kib(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_kib(self.pid))


# --- long note ------------------------------------------------------------------------------


@dataclass
class LongRun:
    server: str
    edits: int
    write_s: float  # writer's first edit → step 2 answered
    stored_s: float  # then → the stored body equals it (syncd), else 0
    join_s: float  # reader's connect → full document
    join_cpu_s: float  # the server's CPU time meanwhile (steadier than join_s on a busy box)
    rss_before_kib: int
    rss_peak_kib: int
    ok: bool


async def dial(url: str, doc_name: str, auth: Callable[[str], bytes]) -> ClientConnection:
    """A bench client's socket (no compression, no limits, no pings), authenticated first
    where the server wants it (Hocuspocus's framing: `doc_name` set). Nothing read yet:
    the library queues what arrives until the caller reads."""
    ws = await connect(url, max_size=None, compression=None, max_queue=None,
                       open_timeout=60, ping_interval=None)
    if doc_name:
        await ws.send(auth(doc_name))
    return ws


class Peer:
    """A y-websocket client on asyncio (Hocuspocus's framing when `doc_name` is set)."""

    def __init__(self, url: str, doc_name: str, wrap: Callable[[str, bytes], bytes],
                 unwrap: Callable[[str, bytes], list[yproto.Message]],
                 auth: Callable[[str], bytes], client_id: int) -> None:
        self.url, self.doc_name = url, doc_name
        self.wrap, self.unwrap, self.auth = wrap, unwrap, auth
        self.doc: Doc[Any] = Doc(client_id=client_id)
        self.text = self.doc.get("body", type=Text)
        self.step2 = asyncio.Event()
        self.changed: Callable[[], None] = lambda: None

    async def open(self) -> None:
        self.ws = await dial(self.url, self.doc_name, self.auth)
        self.reader = asyncio.create_task(self.read())

    async def send(self, frame: bytes) -> None:
        await self.ws.send(self.wrap(self.doc_name, frame))

    async def sync(self) -> None:
        self.step2.clear()
        await self.send(yproto.encode_sync_step1(self.doc.get_state()))
        await self.step2.wait()

    async def read(self) -> None:
        async for frame in self.ws:
            assert isinstance(frame, bytes)
            for msg in self.unwrap(self.doc_name, frame):
                match msg:
                    case yproto.SyncStep1(sv):
                        await self.send(yproto.encode_sync_step2(self.doc.get_update(sv)))
                    case yproto.SyncStep2(update):
                        self.doc.apply_update(update)
                        self.step2.set()
                    case yproto.Update(update):
                        self.doc.apply_update(update)
            self.changed()

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


@dataclass
class Script:
    """The long note's writer, made ahead: one update per edit, then the whole state."""

    client_id: int
    updates: list[bytes]
    state: bytes  # every edit: the writer's document once it sent them all
    text: str


def long_script(edits: int, seed: int = 7) -> Script:
    """E random inserts of PIECE by one Yjs client (`bench/node/long_writer.mjs`)."""
    rng = random.Random(seed)
    client_id = rng.getrandbits(32)
    positions = "".join(f"{rng.randint(0, i * len(PIECE))}\n" for i in range(edits))
    node_dir = ensure_node_modules(NODE_CACHE, NODE_SOURCES)
    out = subprocess.run([node_binary(), str(node_dir / "long_writer.mjs"), str(client_id)],
                         input=positions.encode(), capture_output=True, check=True,
                         cwd=node_dir, timeout=600).stdout
    frames: list[bytes] = []
    pos = 0
    while pos < len(out):
        (size,) = struct.unpack_from("<I", out, pos)
        frames.append(out[pos + 4:pos + 4 + size])
        pos += 4 + size
    *updates, state, text = frames
    assert len(updates) == edits, (len(updates), edits)
    return Script(client_id, updates, state, text.decode())


async def long_note(pid: int, url: str, doc_name: str, script: Script,
                    proto: tuple[Any, Any, Any], stored: Callable[[str], float] | None
                    ) -> tuple[float, float, float, float, bool]:
    writer = Peer(url, doc_name, *proto, client_id=script.client_id)
    await writer.open()
    await writer.sync()  # the server's sync step 1 is answered too (it came first): empty
    # The writer's document as it will be after its edits: its final sync step 1 then
    # asks for nothing, and nothing of it is sent but the update frames.
    writer.doc.apply_update(script.state)
    t0 = time.monotonic()
    for i, update in enumerate(script.updates):
        await writer.send(yproto.encode_update(update))
        if i % 100 == 0:
            await asyncio.sleep(0)
    await writer.sync()  # answered after every edit before it
    write_s = time.monotonic() - t0
    text = script.text
    # The writer stays: Hocuspocus unloads a document its last peer left.
    stored_s = await asyncio.to_thread(stored, text) if stored else 0.0
    reader = Peer(url, doc_name, *proto, client_id=script.client_id ^ 1)
    full = asyncio.Event()
    reader.changed = lambda: full.set() if len(reader.text) >= len(text) else None
    cpu0, t1 = cpu_s(pid), time.monotonic()
    await reader.open()
    await reader.send(yproto.encode_sync_step1(reader.doc.get_state()))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(60):
            await full.wait()
    join_s, join_cpu_s = time.monotonic() - t1, cpu_s(pid) - cpu0
    ok = str(reader.text) == text
    await writer.close()
    if not ok:
        console.print(f"[red]{url}: the reader has {len(reader.text):,} of {len(text):,} "
                      "characters[/red]")
    await reader.close()
    return write_s, stored_s, join_s, join_cpu_s, ok


def run_long(name: str, pid: int, url: str, doc_name: str, script: Script,
             proto: tuple[Any, Any, Any], stored: Callable[[str], float] | None) -> LongRun:
    before = rss_kib(pid)
    with PeakRss(pid) as rss:
        write_s, stored_s, join_s, join_cpu_s, ok = asyncio.run(
            long_note(pid, url, doc_name, script, proto, stored))
    return LongRun(name, len(script.updates), write_s, stored_s, join_s, join_cpu_s, before,
                   rss.peak, ok)


# --- steady ---------------------------------------------------------------------------------


@dataclass
class SteadyRun:
    server: str
    clients: int
    notes: int
    rate: float
    seconds: float
    latencies: list[float]  # seconds, one per (edit, receiver)
    missing: int  # (edit, receiver) pairs never seen
    client_cpu: list[float]  # each client worker's CPU over the run, fraction of one core
    sent: int = 0  # edits sent

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


SteadySpec = tuple[int, str, str, int]  # note, url, doc name, seed
STRING, DELETED, GC, SKIP = 4, 1, 0, 10


def struct_ranges(update: bytes) -> list[tuple[int, int, int]]:
    """(client, first clock, end clock) of each struct a Yjs v1 update carries, skips left
    out: what a receiver learns from it, read without a document. Knows the structs this
    workload makes (text inserts; GC and deleted ranges, which merged updates may hold)."""
    reader = yproto.Reader(update)
    out: list[tuple[int, int, int]] = []
    for _ in range(reader.var_uint()):
        structs, client, clock = reader.var_uint(), reader.var_uint(), reader.var_uint()
        for _ in range(structs):
            info = update[reader.pos]
            reader.pos += 1
            ref = info & 0x1F
            if ref in (GC, SKIP):
                length = reader.var_uint()
            else:
                if info & 0x80:
                    reader.var_uint(), reader.var_uint()
                if info & 0x40:
                    reader.var_uint(), reader.var_uint()
                if not info & 0xC0:
                    if reader.var_uint() == 1:
                        reader.var_string()
                    else:
                        reader.var_uint(), reader.var_uint()
                    if info & 0x20:
                        reader.var_string()
                if ref == STRING:
                    length = len(reader.var_string().encode("utf-16-le")) // 2
                elif ref == DELETED:
                    length = reader.var_uint()
                else:
                    raise ValueError(f"struct content {ref} is not made by this workload")
            if ref != SKIP:
                out.append((client, clock, clock + length))
            clock += length
    return out


class Receiver:
    """What a client has of each other client's edits, as Yjs would integrate them: a
    client's structs count from the first clock it lacks on, later ones wait (pending)."""

    def __init__(self) -> None:
        self.have: dict[int, int] = {}
        self.pending: dict[int, list[tuple[int, int]]] = {}
        self.firsts: dict[tuple[int, int], float] = {}  # (client, clock) → first seen

    def update(self, update: bytes, now: float) -> None:
        for client, start, end in struct_ranges(update):
            have = self.have.get(client, 0)
            if start > have:
                self.pending.setdefault(client, []).append((start, end))
                continue
            if end <= have:
                continue
            have = end
            waiting = self.pending.get(client)
            while waiting:
                waiting.sort()
                if waiting[0][0] > have:
                    break
                have = max(have, waiting.pop(0)[1])
            self.have[client] = have
            self.firsts[(client, have)] = now  # every clock up to it arrived by now


def precompute(client_id: int, seed: int, count: int, doc_name: str,
               wrap: Callable[[str, bytes], bytes]) -> list[tuple[int, bytes]]:
    """A client's edits made before the clock starts: (its clock after the edit, the frame).
    Each inserts PIECE at a random index of the client's own text, so no client spends the
    run integrating the others' edits: the workers stay cheap and the figure is the
    server's. (The server still integrates every edit into one document per note.)"""
    rng = random.Random(seed)
    doc: Doc[Any] = Doc(client_id=client_id)
    text = doc.get("body", type=Text)
    frames = []
    for _ in range(count):
        before = doc.get_state()
        text.insert(rng.randint(0, len(text)), PIECE)
        frames.append((state_vector(doc)[client_id],
                       wrap(doc_name, yproto.encode_update(doc.get_update(before)))))
    return frames


class SteadyPeer:
    """A steady client: sends precomputed edits, reads what arrives without a document."""

    def __init__(self, note: int, url: str, doc_name: str, seed: int,
                 proto: tuple[Any, Any, Any], count: int) -> None:
        self.note, self.url, self.doc_name = note, url, doc_name
        self.wrap, self.unwrap, self.auth = proto
        self.client_id = random.Random(seed).getrandbits(32)
        self.frames = precompute(self.client_id, seed, count, doc_name, self.wrap)
        self.received = Receiver()
        self.synced = asyncio.Event()

    async def open(self) -> None:
        self.ws = await dial(self.url, self.doc_name, self.auth)
        self.reader = asyncio.create_task(self.read())
        await self.ws.send(self.wrap(self.doc_name, yproto.encode_sync_step1(b"\x00")))
        async with asyncio.timeout(60):
            await self.synced.wait()

    async def read(self) -> None:
        empty = self.wrap(self.doc_name, yproto.encode_sync_step2(b"\x00\x00"))
        async for frame in self.ws:
            assert isinstance(frame, bytes)
            now = time.monotonic()
            for msg in self.unwrap(self.doc_name, frame):
                match msg:
                    case yproto.SyncStep1(_):  # nothing sent yet: nothing to offer
                        await self.ws.send(empty)
                    case yproto.SyncStep2(update):
                        self.received.update(update, now)
                        self.synced.set()
                    case yproto.Update(update):
                        self.received.update(update, now)

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


def steady_worker(conn: Connection, specs: list[SteadySpec], rate: float, seconds: float,
                  proto: tuple[Any, Any, Any]) -> None:
    raise_nofile()
    asyncio.run(_steady_worker(conn, specs, rate, seconds, proto))


async def _steady_worker(conn: Connection, specs: list[SteadySpec], rate: float,
                         seconds: float, proto: tuple[Any, Any, Any]) -> None:
    count = int(rate * seconds) + 1
    peers = [SteadyPeer(note, url, doc_name, seed, proto, count)
             for note, url, doc_name, seed in specs]
    await asyncio.gather(*(p.open() for p in peers))
    conn.send(("ready",))
    await pipe_recv(conn)
    sent: list[tuple[int, int, int, float]] = []  # note, client id, clock, time
    period = 1 / rate
    t0, cpu0 = time.monotonic(), time.process_time()
    end = t0 + seconds

    async def edit(peer: SteadyPeer, rng: random.Random) -> None:
        # On a fixed schedule at the client's own phase: a late send does not push the
        # later ones back, so every server is offered the same load.
        first = t0 + rng.random() * period
        for k, (clock, frame) in enumerate(peer.frames):
            at = first + k * period
            if at >= end:
                break
            if (delay := at - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            sent.append((peer.note, peer.client_id, clock, time.monotonic()))
            await peer.ws.send(frame)

    await asyncio.gather(*(edit(p, random.Random(i)) for i, p in enumerate(peers)))
    cpu = (time.process_time() - cpu0) / (time.monotonic() - t0)
    await asyncio.sleep(3)  # what is in flight arrives
    received = [(p.note, p.client_id, sorted(p.received.firsts.items())) for p in peers]
    conn.send(("done", sent, received, cpu))
    await pipe_recv(conn)
    for p in peers:
        await p.close()
    conn.close()


def run_steady(name: str, urls: Sequence[str], doc_names: Sequence[str], clients: int,
               rate: float, seconds: float, proto: tuple[Any, Any, Any]) -> SteadyRun:
    notes = len(urls)
    specs = [(i % notes, urls[i % notes], doc_names[i % notes], 9000 + i)
             for i in range(clients)]
    workers = [Worker(steady_worker, specs[k::WORKERS], rate, seconds, proto)
               for k in range(WORKERS)]
    for w in workers:
        w.recv()
    for w in workers:
        w.send(("go",))
    replies = [w.recv(timeout=seconds + 300) for w in workers]
    for w in workers:
        w.send(("close",))
        w.stop()
    sent = [s for r in replies for s in r[1]]
    received = [x for r in replies for x in r[2]]
    # A receiver's first time for each client clock it saw: an edit arrived with the first
    # recorded clock of its client at or past the edit's own.
    latencies: list[float] = []
    missing = 0
    for note, me, firsts in received:
        by_client: dict[int, tuple[list[int], list[float]]] = {}
        for (client, clock), t in firsts:  # sorted by client, then clock
            clocks, times = by_client.setdefault(client, ([], []))
            clocks.append(clock)
            times.append(t)
        for s_note, client, clock, t_sent in sent:
            if s_note != note or client == me:
                continue
            clocks, times = by_client.get(client, ([], []))
            i = bisect.bisect_left(clocks, clock)
            if i == len(clocks):
                missing += 1
            else:
                latencies.append(times[i] - t_sent)
    return SteadyRun(name, clients, notes, rate, seconds, latencies, missing,
                     [r[3] for r in replies], len(sent))
