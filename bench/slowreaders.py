"""Server memory with sync sockets that never read, during a push storm.

N sockets (default 1,000) of one user say `hello` and then never read (each with a small
receive buffer); another device of the user pushes commits that fan out to all of them.
Each socket may hold `SYNCD_WS_QUEUE_BYTES` (1 MiB) waiting for it, then it is resynced or
closed with 4408, so the server's RSS should stay under baseline + budget × N. Prints the
RSS (baseline, peak while pushing, after), the server's own accounting
(`syncd_ws_waiting_bytes_peak`) and how the sockets ended.

    python -m bench.slowreaders [--sockets 1000] [--pushes 60] [--ops 50]
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets
import socket
import threading
import time

import httpx

from bench.common import bench_env, console, new_id, parser
from bench.sockets import raise_nofile, rss_kib


async def open_reader(port: int, token: str, rcvbuf: int) -> tuple[asyncio.StreamReader,
                                                                   asyncio.StreamWriter]:
    """A sync socket, hand-made: the handshake, a `hello`, and then no reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    # A small limit: the stream stops reading from the socket past twice that.
    reader, writer = await asyncio.open_connection(sock=sock, limit=8192)
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    writer.write(f"GET /v1/sync/ws?token={token} HTTP/1.1\r\nHost: bench\r\n"
                 f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head[:200]
    payload = json.dumps({"type": "hello", "cursor": 0}).encode()
    mask = secrets.token_bytes(4)
    writer.write(bytes([0x81, 0x80 | len(payload)]) + mask
                 + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    await writer.drain()
    return reader, writer


async def ending(reader: asyncio.StreamReader) -> str:
    """What a socket got in the end: read what is buffered (bounded) and classify it."""
    data = b""
    try:
        async with asyncio.timeout(5):
            while chunk := await reader.read(65536):
                data = (data + chunk)[-4096:]  # the end is what matters
    except TimeoutError:
        pass
    if b"\x88" in data and (4408).to_bytes(2, "big") in data:
        return "closed 4408"
    if b'"type":"resync"' in data:
        return "resynced"
    return "closed" if reader.at_eof() else "open"


def metric(base_url: str, name: str) -> float:
    text = httpx.get(f"{base_url}/metrics", timeout=60).text
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--sockets", type=int, default=1000)
    p.add_argument("--devices", type=int, default=10, help="logins the sockets share")
    p.add_argument("--pushes", type=int, default=60)
    p.add_argument("--ops", type=int, default=50, help="ops per push (~3.3 kB each)")
    p.add_argument("--rcvbuf", type=int, default=16 * 1024)
    args = p.parse_args()
    raise_nofile()
    args.server_env = ["SYNCD_MAX_CONNECTIONS_PER_IP=0", *args.server_env]
    budget = int(dict(kv.split("=", 1) for kv in args.server_env).get(
        "SYNCD_WS_QUEUE_BYTES", 1024 * 1024))
    with bench_env(args) as env:
        pusher = env.device("pusher")
        tokens = [pusher.login(pusher.http, pusher.email, f"reader{i}").token
                  for i in range(args.devices)]
        pid = env.server.proc.pid  # type: ignore[union-attr]

        async def run() -> None:
            readers = []
            for i in range(args.sockets):
                readers.append(await open_reader(env.server.port, tokens[i % len(tokens)],
                                                 args.rcvbuf))
            await asyncio.sleep(2)
            baseline = rss_kib(pid)
            peak = [baseline]
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    peak[0] = max(peak[0], rss_kib(pid))
                    time.sleep(0.1)

            def storm() -> None:
                for r in range(args.pushes):
                    ops = [pusher.set_op(new_id(), title=f"{r}.{k}",
                                         tags=[secrets.token_urlsafe(48) for _ in range(50)])
                           for k in range(args.ops)]
                    pusher.push(ops)

            sampler = threading.Thread(target=sample)
            sampler.start()
            t0 = time.perf_counter()
            await asyncio.to_thread(storm)
            pushed = time.perf_counter() - t0
            await asyncio.sleep(float(os.environ.get("SLOWREADERS_SETTLE", "15")))
            done.set()
            sampler.join()
            after = rss_kib(pid)
            waiting_peak = metric(env.server.base_url, "syncd_ws_waiting_bytes_peak")
            waiting_now = metric(env.server.base_url, "syncd_ws_waiting_bytes")
            subscribed = metric(env.server.base_url, "syncd_hub_subscribers")
            ends = await asyncio.gather(*(ending(r) for r, _ in readers))
            for _, w in readers:
                w.close()
            n = args.sockets
            console.print(f"{n} non-reading sync sockets, {args.pushes} pushes of {args.ops} "
                          f"ops in {pushed:.1f} s; budget {budget / 1024:.0f} KiB a socket")
            console.print(f"server RSS: baseline {baseline / 1024:.1f} MiB, peak "
                          f"{peak[0] / 1024:.1f} MiB, after {after / 1024:.1f} MiB; bound "
                          f"baseline + budget × N = "
                          f"{(baseline * 1024 + budget * n) / 2**20:.1f} MiB")
            console.print(f"server accounting: most bytes waiting for one socket "
                          f"{waiting_peak / 1024:.1f} KiB (≤ budget: {waiting_peak <= budget})")
            console.print(f"after the storm: {subscribed:.0f} sockets still served, "
                          f"{waiting_now / 1024:.1f} KiB waiting for them in all")
            console.print("what the sockets read in the end (5 s each): " + ", ".join(
                f"{k} {ends.count(k)}" for k in sorted(set(ends))))

        asyncio.run(run())


if __name__ == "__main__":
    main()
