"""Shared plumbing for the socket benches (fanout, idle, collab): PostgreSQL + a fresh
database once, then any number of `syncd serve` processes on it (optionally sharing a
redis-server of the bench's own), client worker processes driven over a pipe, and the
server's RSS from /proc.

    with cluster(args) as c:                  # PostgreSQL + fresh DB (no server yet)
        a = c.server(redis=True)              # a `syncd serve`, REDIS_URL = c.redis_url
        rss_kib(a.proc.pid)
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import resource
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

from bench.common import PASSWORD, Device, bench_database
from tests.fix_server import RedisProcess, ServerProcess


def raise_nofile() -> int:
    """Raise the soft open-files limit to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kib(pid: int) -> int:
    """VmRSS of a process, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far (clock ticks: 10 ms)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Cluster:
    """PostgreSQL + one fresh database; servers and Redis started on demand."""

    admin_url: str
    url: str
    tmp: Path
    pg_kind: str
    servers: list[ServerProcess] = field(default_factory=list)
    redis: RedisProcess | None = None
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def redis_url(self) -> str:
        if self.redis is None:
            self.redis = RedisProcess(self.tmp / "redis")
            self.redis.start()
        return self.redis.url

    def server(self, redis: bool = False, env: dict[str, str] | None = None) -> ServerProcess:
        n = len(self.servers)
        s = ServerProcess(self.url, self.tmp / f"server-{n}",
                          redis_url=self.redis_url if redis else None, env=env)
        self.servers.append(s)
        s.start()
        return s

    def stop(self, server: ServerProcess) -> None:
        server.stop()

    def user(self, base_url: str, devices: int = 1) -> list[Device]:
        """A new user with `devices` logged-in devices on the server at base_url."""
        import secrets

        http = httpx.Client(base_url=base_url, timeout=120)
        self.clients.append(http)
        email = f"bench-{secrets.token_hex(6)}@example.com"
        r = http.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
        r.raise_for_status()
        return [Device.login(http, email, f"dev{i}") for i in range(devices)]


@contextlib.contextmanager
def cluster(args: argparse.Namespace) -> Iterator[Cluster]:
    raise_nofile()
    with bench_database(args) as db:
        c = Cluster(db.admin_url, db.url, db.tmp, db.kind)
        try:
            yield c
        finally:
            for h in c.clients:
                h.close()
            for s in c.servers:
                s.stop()
            if c.redis is not None:
                c.redis.stop()


class Worker:
    """A client process running `target(conn, *args)`; talk to it with ask()."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        ctx = mp.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child, *args), daemon=True)
        self.proc.start()
        child.close()

    def send(self, msg: Any) -> None:
        self.conn.send(msg)

    def recv(self, timeout: float = 300) -> Any:
        if not self.conn.poll(timeout):
            raise RuntimeError(f"client worker {self.proc.pid} did not answer in {timeout}s")
        return self.conn.recv()

    def stop(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send(("close",))
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


async def pipe_recv(conn: Connection) -> Any:
    """Await the next message from the coordinator without blocking the event loop."""
    import asyncio

    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, conn.recv)
