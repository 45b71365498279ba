"""Shared bench setup: PostgreSQL (embedded or --database-url), a fresh database, a real
`syncd serve` process, logged-in devices talking HTTP (httpx keep-alive, msgspec JSON),
COPY baselines, and result tables.

Every bench is `python -m bench.<name> [--database-url URL] [--keep]` from the repo root:

    with bench_env(args) as env:          # PostgreSQL + fresh DB + server
        dev = env.device()                # register + login a user (one device)
        dt, resp = dev.push([dev.set_op(new_id(), title="x")])
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import os
import platform
import secrets
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psycopg
from rich.console import Console
from rich.table import Table

from tests.fix_server import ServerProcess
from tests.fix_services import drop_database, fresh_database

PASSWORD = "correct horse battery staple"
console = Console(width=None if os.isatty(1) else 160)  # logs: bench.push has 12 columns
_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()


# --- arguments, PostgreSQL, server ----------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--database-url", default=os.environ.get("SYNCD_BENCH_DATABASE_URL"),
                   help="an admin URL of an existing PostgreSQL (a fresh database is created "
                   "in it); default: an embedded PostgreSQL (pgserver) in a temp dir")
    p.add_argument("--keep", action="store_true",
                   help="keep the bench database (and temp dir) afterwards")
    p.add_argument("--server-env", action="append", default=[], metavar="K=V",
                   help="extra environment for the syncd process (repeatable)")
    return p


@dataclass
class Env:
    """One bench run: the database URL, the server, and a client factory."""

    admin_url: str
    url: str
    server: ServerProcess
    tmp: Path
    pg_kind: str
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self) -> httpx.Client:
        c = httpx.Client(base_url=self.server.base_url, timeout=120,
                         limits=httpx.Limits(max_keepalive_connections=4))
        self.clients.append(c)
        return c

    def device(self, name: str = "bench") -> Device:
        """A new user with one logged-in device."""
        http = self.client()
        email = f"bench-{secrets.token_hex(6)}@example.com"
        r = http.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
        r.raise_for_status()
        return Device.login(http, email, name)

    def pg_settings(self) -> dict[str, str]:
        with psycopg.connect(self.url) as conn:
            rows = conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('server_version', "
                "'fsync', 'synchronous_commit', 'shared_buffers', 'wal_level')").fetchall()
        return {str(k): str(v) for k, v in rows}


@dataclass
class BenchDatabase:
    admin_url: str
    url: str
    tmp: Path
    kind: str


@contextlib.contextmanager
def bench_database(args: argparse.Namespace) -> Iterator[BenchDatabase]:
    """PostgreSQL (embedded unless --database-url) and a fresh database in it, dropped
    afterwards unless --keep."""
    tmp = Path(tempfile.mkdtemp(prefix="syncd-bench-"))
    pg_handle: Any = None
    admin_url = args.database_url
    kind = "external (--database-url)"
    if not admin_url:
        import pgserver

        pg_handle = pgserver.get_server(  # type: ignore[attr-defined]
            tmp / "pg", cleanup_mode=None if args.keep else "stop")
        admin_url = pg_handle.get_uri()
        kind = "embedded (pgserver)"
    url = fresh_database(admin_url, prefix="syncd_bench")
    try:
        yield BenchDatabase(admin_url, url, tmp, kind)
    finally:
        if not args.keep:
            drop_database(admin_url, url)
            if pg_handle is not None:
                pg_handle.cleanup()
            # The embedded cluster's files (~230 MB after bench.api) stay behind otherwise.
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            console.print(f"kept database {url} and {tmp}")


@contextlib.contextmanager
def bench_env(args: argparse.Namespace) -> Iterator[Env]:
    """A bench database and a `syncd serve` on it."""
    with bench_database(args) as db:
        extra = dict(kv.split("=", 1) for kv in args.server_env)
        server = ServerProcess(db.url, db.tmp / "server", env=extra)
        env = Env(db.admin_url, db.url, server, db.tmp, db.kind)
        try:
            server.start()
            yield env
        finally:
            for c in env.clients:
                c.close()
            server.stop()


# --- devices --------------------------------------------------------------------------------


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Device:
    """A logged-in device: client_seq and HLC bookkeeping, push/pull/snapshot over HTTP."""

    http: httpx.Client
    user_id: str
    device_id: str
    email: str
    token: str
    seq: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    counter: Iterator[int] = field(default_factory=itertools.count)

    @classmethod
    def login(cls, http: httpx.Client, email: str, name: str = "bench") -> Device:
        r = http.post("/v1/auth/login", json={
            "email": email, "password": PASSWORD,
            "device": {"name": name, "platform": "bench"}})
        r.raise_for_status()
        b = r.json()
        return cls(http, b["user"]["id"], b["device_id"], email, b["access_token"])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}

    def hlc(self) -> str:
        return f"{int(time.time() * 1000):013d}.{next(self.counter) % 1_000_000:06d}." \
               f"{self.device_id}"

    def set_op(self, id: str, entity: str = "note", **fields: Any) -> dict[str, Any]:
        return {"client_seq": next(self.seq), "hlc": self.hlc(), "entity": entity, "id": id,
                "kind": "set", "fields": fields}

    def text_op(self, id: str, update_b64: str) -> dict[str, Any]:
        return {"client_seq": next(self.seq), "hlc": self.hlc(), "entity": "note", "id": id,
                "kind": "text", "field": "body", "update": update_b64}

    def push_body(self, ops: list[dict[str, Any]]) -> bytes:
        return _enc.encode({"ops": ops})

    def push_raw(self, body: bytes) -> tuple[float, dict[str, Any]]:
        """POST an encoded push; returns (seconds, decoded response). Refusals raise."""
        t0 = time.perf_counter()
        r = self.http.post("/v1/sync/push", content=body, headers=self.headers)
        out = _dec.decode(r.content)
        dt = time.perf_counter() - t0
        if r.status_code != 200:
            raise RuntimeError(f"push refused: {r.status_code} {r.text[:500]}")
        return dt, out

    def push(self, ops: list[dict[str, Any]]) -> tuple[float, dict[str, Any]]:
        return self.push_raw(self.push_body(ops))

    def get(self, path: str, **params: Any) -> tuple[float, Any]:
        t0 = time.perf_counter()
        r = self.http.get(path, params=params, headers=self.headers)
        out = _dec.decode(r.content)
        dt = time.perf_counter() - t0
        if r.status_code != 200:
            raise RuntimeError(f"GET {path} refused: {r.status_code} {r.text[:500]}")
        return dt, out


def check_applied(resp: dict[str, Any], n: int) -> None:
    bad = [r for r in resp["results"] if r["status"] != "applied"]
    if bad or len(resp["results"]) != n:
        raise RuntimeError(f"{len(bad)} op(s) not applied, e.g. {bad[:1]}")


# --- COPY baselines -------------------------------------------------------------------------


def _copy_text(v: Any) -> str:
    if v is None:
        return r"\N"
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, bytes | bytearray):
        return "\\\\x" + bytes(v).hex()
    s = str(v)
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def copy_buffer(rows: Sequence[Sequence[Any]]) -> bytes:
    """Rows in COPY text format, built before timing so only PostgreSQL is measured."""
    buf = io.StringIO()
    for row in rows:
        buf.write("\t".join(map(_copy_text, row)))
        buf.write("\n")
    return buf.getvalue().encode()


EVENT_COLS = ("user_id, seq, op_id, entity, entity_id, kind, fields, has_payload, hlc, "
              "device_id, author_id, client_seq, at")


class EventRows:
    """Event (and payload) rows as syncd's log.append writes them, for COPY baselines."""

    def __init__(self, user_id: str, device_id: str) -> None:
        self.user_id = user_id
        self.device_id = device_id
        self.seq = itertools.count(1)
        self.op_id = itertools.count(10_000_000)
        self.at = datetime.now(UTC).isoformat()

    def from_ops(self, ops: Sequence[dict[str, Any]],
                 payload: Callable[[dict[str, Any]], bytes | None] = lambda op: None,
                 ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        events, payloads = [], []
        for op in ops:
            op_id = next(self.op_id)
            data = payload(op)
            fields = None if op.get("fields") is None else _enc.encode(op["fields"]).decode()
            events.append((self.user_id, next(self.seq), op_id, op["entity"], op["id"],
                           op["kind"], fields, data is not None, op["hlc"], self.device_id,
                           self.user_id, op["client_seq"], self.at))
            if data is not None:
                payloads.append((op_id, data))
        return events, payloads


@dataclass
class CopyResult:
    rows: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


class CopyBaseline:
    """COPY into scratch copies of `events` / `payloads` (same columns, indexes, WAL)."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url)
        self.conn.execute("DROP TABLE IF EXISTS bench_events, bench_payloads")
        self.conn.execute("CREATE TABLE bench_events (LIKE events INCLUDING ALL)")
        self.conn.execute("CREATE TABLE bench_payloads (LIKE payloads INCLUDING ALL)")
        self.conn.commit()

    def run(self, batches: Sequence[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]],
            ) -> CopyResult:
        """COPY each batch (events + payloads) in its own committed transaction."""
        bufs = [(copy_buffer(ev), copy_buffer(pl) if pl else None, len(ev))
                for ev, pl in batches]
        lat: list[float] = []
        total = time.perf_counter()
        for ev_buf, pl_buf, _ in bufs:
            t0 = time.perf_counter()
            with self.conn.cursor() as cur:
                if pl_buf is not None:
                    with cur.copy("COPY bench_payloads (op_id, data) FROM STDIN") as cp:
                        cp.write(pl_buf)
                with cur.copy(f"COPY bench_events ({EVENT_COLS}) FROM STDIN") as cp:
                    cp.write(ev_buf)
            self.conn.commit()
            lat.append(time.perf_counter() - t0)
        return CopyResult(sum(b[2] for b in bufs), time.perf_counter() - total, lat)

    def copy_out(self, query: str, params: Sequence[Any] = ()) -> tuple[float, int]:
        """Time `COPY (query) TO STDOUT`: the read-side physical limit. (seconds, bytes)"""
        t0 = time.perf_counter()
        size = 0
        with self.conn.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT", params) as cp:
            for chunk in cp:
                size += len(chunk)
        self.conn.commit()
        return time.perf_counter() - t0, size

    def close(self) -> None:
        self.conn.execute("DROP TABLE IF EXISTS bench_events, bench_payloads")
        self.conn.commit()
        self.conn.close()


# --- numbers and tables ---------------------------------------------------------------------


def pct(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank) of values."""
    s = sorted(values)
    if not s:
        return 0.0
    k = max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))
    return s[k]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def rate(n: float) -> str:
    return f"{n:,.0f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def verdict(ok: bool) -> str:
    return "[green]met[/green]" if ok else "[red]MISSED[/red]"


def machine(env: Env) -> str:
    pg = env.pg_settings()
    return (f"{platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), "
            f"{platform.machine()} {platform.system()}; PostgreSQL {pg.get('server_version')} "
            f"{env.pg_kind}, fsync={pg.get('fsync')}, "
            f"synchronous_commit={pg.get('synchronous_commit')}")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*r)
    return t


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0
