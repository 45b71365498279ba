"""Fan-out latency on the sync socket (`/v1/sync/ws`), and server memory per idle socket.

Part 1, latency. One user; N sockets of that user (spread over 8 logged-in devices, as a
user with many open tabs/devices: the hub delivers per user, so this is the fan-out path
a project's members take too, minus the per-member log copies) do hello → welcome, then
one more device of the user pushes one `set` op per HTTP request at a steady rate. Each
socket records the arrival (CLOCK_MONOTONIC, shared by all processes) of every event;
latency = arrival − the moment the push request was sent (so it includes the commit
itself; "after ack" = arrival − the moment the push response was decoded, which may be
negative). Scenarios: 100 and 1,000 sockets on one node; the same split half/half over
two `syncd serve` processes sharing PostgreSQL and a redis-server of the bench's own,
pushes made on node A. The clients are asyncio + `websockets` in separate processes.

Part 2, idle sockets. A fresh server; RSS (VmRSS) before, after opening 1,000 idle
authenticated sockets (hello → welcome done), and after 5,000; (after − before) / N.
Run twice: clients offering permessage-deflate (as browsers and the `websockets` client
do by default) and clients without compression.

    python -m bench.fanout [--database-url URL] [--pushes 200] [--rate 20] [--skip-idle]

Targets: p99 < 50 ms at 1,000 sockets; < 50 KiB of server memory per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.common import Device, console, ms, new_id, parser, pct, table, verdict
from bench.sockets import Cluster, Worker, cluster, pipe_recv, raise_nofile, rss_kib
from tests.fix_server import ServerProcess

TARGET_P99_MS = 50.0
TARGET_IDLE_KIB = 50.0
LISTENER_DEVICES = 8
SOCKETS_PER_WORKER = 1250


# --- the client worker process ---------------------------------------------------------------


class Ev(msgspec.Struct):
    seq: int


class Frame(msgspec.Struct):
    type: str
    events: list[Ev] = []


def sync_worker(conn: Connection, urls: list[str], cursor: int, compression: bool) -> None:
    """Open a sync socket per URL (hello from `cursor`), record every event's arrival."""
    raise_nofile()
    asyncio.run(_sync_worker(conn, urls, cursor, compression))


async def _sync_worker(conn: Connection, urls: list[str], cursor: int,
                       compression: bool) -> None:
    dec = msgspec.json.Decoder(Frame)
    hello = msgspec.json.encode({"type": "hello", "cursor": cursor}).decode()
    ping = msgspec.json.encode({"type": "ping"}).decode()
    socks: list[ClientConnection] = []
    arrivals: list[list[tuple[int, float]]] = []
    failures: list[str] = []
    closed: list[int | None] = []
    tasks: list[asyncio.Task[None]] = []
    gate = asyncio.Semaphore(32)  # concurrent handshakes: stay under the listen backlog

    async def read(ws: ClientConnection, out: list[tuple[int, float]]) -> None:
        try:
            async for frame in ws:
                now = time.monotonic()
                f = dec.decode(frame)
                if f.type == "events":
                    out.extend((e.seq, now) for e in f.events)
        except ConnectionClosed as e:
            closed.append(e.rcvd.code if e.rcvd else None)
        else:
            closed.append(ws.close_code)

    async def open_one(url: str) -> None:
        async with gate:
            try:
                ws = await connect(url, compression="deflate" if compression else None,
                                   max_size=None, open_timeout=120, ping_interval=None)
                await ws.send(hello)
                welcome = dec.decode(await ws.recv())
                if welcome.type != "welcome":
                    raise RuntimeError(f"expected welcome, got {welcome.type}")
            except Exception as e:  # deliberate: count and report, do not abort the bench
                failures.append(repr(e)[:200])
                return
        out: list[tuple[int, float]] = []
        socks.append(ws)
        arrivals.append(out)
        tasks.append(asyncio.create_task(read(ws, out)))

    async def keepalive() -> None:  # the server closes sockets silent for 60 s
        while True:
            await asyncio.sleep(20)
            for ws in list(socks):
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(ping)

    await asyncio.gather(*(open_one(u) for u in urls))
    pinger = asyncio.create_task(keepalive())
    conn.send(("ready", len(socks), len(failures), failures[:3]))
    while True:
        msg = await pipe_recv(conn)
        if msg[0] == "collect":
            last, timeout = msg[1], msg[2]
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and any(  # noqa: ASYNC110 (polls lists)
                    not a or a[-1][0] < last for a in arrivals):
                await asyncio.sleep(0.05)
            conn.send(("results", arrivals, closed))
        elif msg[0] == "close":
            pinger.cancel()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(15):
                    await asyncio.gather(*(ws.close() for ws in socks),
                                         return_exceptions=True)
            for t in tasks:
                t.cancel()
            conn.close()
            return


def start_clients(urls: Sequence[str], cursor: int, compression: bool,
                  per_worker: int = SOCKETS_PER_WORKER) -> list[Worker]:
    """Client processes opening `urls`; returns once every socket said welcome."""
    workers = [Worker(sync_worker, list(urls[i:i + per_worker]), cursor, compression)
               for i in range(0, len(urls), per_worker)]
    for w in workers:
        _, _opened, failed, sample = w.recv()
        if failed:
            raise RuntimeError(f"{failed} socket(s) failed to open, e.g. {sample}")
    return workers


def socket_urls(node: ServerProcess, devices: Sequence[Device], n: int) -> list[str]:
    return [f"{node.ws_url}/v1/sync/ws?token={devices[i % len(devices)].token}"
            for i in range(n)]


# --- part 1: latency ------------------------------------------------------------------------


@dataclass
class LatencyRun:
    name: str
    sockets: int
    pushes: int
    by_node: dict[str, list[float]]  # arrival − push sent, seconds
    after_ack: list[float]  # arrival − push response decoded
    missing: int
    duplicates: int
    push_p50: float
    closed: int


def push_one(dev: Device, title: str) -> tuple[int, float, float]:
    """One single-op push; (seq, sent, response decoded) on the monotonic clock."""
    body = dev.push_body([dev.set_op(new_id(), title=title)])
    t0 = time.monotonic()
    r = dev.http.post("/v1/sync/push", content=body, headers=dev.headers)
    out = msgspec.json.decode(r.content)
    t1 = time.monotonic()
    if r.status_code != 200 or out["results"][0]["status"] != "applied":
        raise RuntimeError(f"push refused: {r.status_code} {r.text[:300]}")
    return int(out["cursor"]), t0, t1


def latency_run(c: Cluster, name: str, nodes: Sequence[ServerProcess], n: int, pushes: int,
                rate: float, warm: int = 20) -> LatencyRun:
    devs = c.user(nodes[0].base_url, LISTENER_DEVICES + 1)
    pusher, listeners = devs[0], devs[1:]
    cursor, _, _ = push_one(pusher, "before")
    workers: list[tuple[str, Worker]] = []
    for k, node in enumerate(nodes):
        share = n // len(nodes) + (1 if k < n % len(nodes) else 0)
        label = "ABCDEFGH"[k]
        workers += [(label, w) for w in start_clients(
            socket_urls(node, listeners, share), cursor, compression=True)]
    time.sleep(1.0)  # let every node's Redis subscription settle
    sent: dict[int, float] = {}
    acked: dict[int, float] = {}
    push_lat = []
    t_start = time.monotonic()
    last = cursor
    for i in range(warm + pushes):
        wait = t_start + i / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        seq, t0, t1 = push_one(pusher, f"p{i}")
        last = seq
        if i >= warm:
            sent[seq], acked[seq] = t0, t1
            push_lat.append(t1 - t0)
    by_node: dict[str, list[float]] = {}
    after_ack: list[float] = []
    missing = dups = closed = 0
    for label, w in workers:
        w.send(("collect", last, 30.0))
        _, arrivals, closes = w.recv()
        closed += len(closes)
        lat = by_node.setdefault(label, [])
        for per_socket in arrivals:
            seen: set[int] = set()
            for seq, t in per_socket:
                if seq in seen:
                    dups += 1
                    continue
                seen.add(seq)
                if seq in sent:
                    lat.append(t - sent[seq])
                    after_ack.append(t - acked[seq])
            missing += sum(1 for s in sent if s not in seen)
    for _, w in workers:
        w.stop()
    return LatencyRun(name, n, pushes, by_node, after_ack, missing, dups,
                      pct(push_lat, 50), closed)


# --- part 2: idle sockets -------------------------------------------------------------------


@dataclass
class IdleRun:
    compression: bool
    before_kib: int
    points: list[tuple[int, int]]  # (sockets, RSS KiB)


def idle_run(c: Cluster, counts: Sequence[int], compression: bool) -> IdleRun:
    node = c.server()
    try:
        devs = c.user(node.base_url, LISTENER_DEVICES)
        cursor, _, _ = push_one(devs[0], "idle")
        # warm-up: a few sockets open, receive, close (imports, caches, pools)
        warm = start_clients(socket_urls(node, devs, 50), cursor, compression)
        for i in range(5):
            push_one(devs[0], f"warm {i}")
        for w in warm:
            w.stop()
        time.sleep(2.0)
        before = rss_kib(node.proc.pid)  # type: ignore[union-attr]
        workers: list[Worker] = []
        points = []
        opened = 0
        for target in counts:
            workers += start_clients(socket_urls(node, devs, target - opened), cursor + 6,
                                     compression)
            opened = target
            time.sleep(3.0)
            points.append((target, rss_kib(node.proc.pid)))  # type: ignore[union-attr]
        for w in workers:
            w.stop()
        return IdleRun(compression, before, points)
    finally:
        node.stop()


# --- main -----------------------------------------------------------------------------------


def machine_line(c: Cluster) -> str:
    import os
    import platform

    import psycopg

    with psycopg.connect(c.url) as conn:
        row = conn.execute("SELECT current_setting('server_version'), current_setting("
                           "'fsync'), current_setting('synchronous_commit')").fetchone()
    assert row is not None
    return (f"{platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, {platform.machine()} {platform.system()}; PostgreSQL "
            f"{row[0]} {c.pg_kind}, fsync={row[1]}, synchronous_commit={row[2]}")


def main() -> int:
    p = parser(__doc__ or "")
    p.add_argument("--pushes", type=int, default=200, help="measured pushes per scenario")
    p.add_argument("--rate", type=float, default=20.0, help="pushes per second")
    p.add_argument("--sockets", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--idle", type=int, nargs="+", default=[1000, 5000])
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--skip-idle", action="store_true")
    args = p.parse_args()
    started = time.perf_counter()
    runs: list[LatencyRun] = []
    idles: list[IdleRun] = []
    with cluster(args) as c:
        console.print(f"[bold]bench.fanout[/bold] — {machine_line(c)}")
        if not args.skip_latency:
            one = c.server()
            for n in args.sockets:
                runs.append(latency_run(c, "one node", [one], n, args.pushes, args.rate))
                console.print(f"  one node, {n} sockets done")
            one.stop()
            two = [c.server(redis=True), c.server(redis=True)]
            for n in args.sockets:
                runs.append(latency_run(c, "two nodes + Redis", two, n, args.pushes,
                                        args.rate))
                console.print(f"  two nodes, {n} sockets done")
            for s in two:
                s.stop()
        if not args.skip_idle:
            for compression in (True, False):
                idles.append(idle_run(c, args.idle, compression))

    targets: list[tuple[str, str, str]] = []
    if runs:
        rows = []
        for r in runs:
            every = [x for v in r.by_node.values() for x in v]
            for label, lat in sorted(r.by_node.items()) + ([("all", every)]
                                                           if len(r.by_node) > 1 else []):
                where = {"A": "node A (pushes)", "B": "node B (via Redis)"}.get(label, label)
                rows.append((r.name, str(r.sockets), where, str(len(lat)), ms(pct(lat, 50)),
                             ms(pct(lat, 99)), ms(max(lat, default=0.0)),
                             ms(pct(r.after_ack, 50)) if label in ("all", "A") else "",
                             f"{r.missing}/{r.duplicates}/{r.closed}"))
            if r.sockets >= 1000:
                p99 = pct(every, 99) * 1000
                targets.append((f"p99 < {TARGET_P99_MS:.0f} ms, {r.sockets} sockets, {r.name}",
                                f"{p99:.1f} ms", verdict(p99 < TARGET_P99_MS)))
        console.print(table(
            f"fan-out latency: push sent → event received ({args.rate:g} single-op pushes/s, "
            f"{args.pushes} measured after 20 warm-up; push p50 "
            f"{ms(runs[0].push_p50)} ms)",
            ("scenario", "sockets", "sockets on", "samples", "p50 ms", "p99 ms", "max ms",
             "p50 after ack", "missing/dup/closed"), rows))
    if idles:
        rows = []
        for i in idles:
            for n, rss in i.points:
                per = (rss - i.before_kib) / n
                kind = "deflate offered" if i.compression else "no compression"
                rows.append((kind, str(n), f"{i.before_kib / 1024:.1f}", f"{rss / 1024:.1f}",
                             f"{per:.1f}"))
                targets.append((f"< {TARGET_IDLE_KIB:.0f} KiB per idle socket, {n}, {kind}",
                                f"{per:.1f} KiB", verdict(per < TARGET_IDLE_KIB)))
        console.print(table("idle sync sockets: server RSS",
                            ("clients", "sockets", "RSS before MiB", "RSS after MiB",
                             "KiB / socket"), rows))
    console.print(table("targets", ("target", "measured", ""), targets))
    console.print(f"total bench time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

