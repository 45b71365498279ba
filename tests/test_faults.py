"""Faults with real processes: the server killed with -9 under load, PostgreSQL restarted
under a running server, and connections cut between a request and its response.

After each: no acknowledged op is lost and none is applied twice (each (device_id,
client_seq) is in the log at most once, and every one up to the device's `acked` is).
"""

from __future__ import annotations

import random
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from syncd_client import ApiError, SyncClient

from tests.fix_server import ServerProcess, free_port
from tests.fix_services import drop_database, fresh_database
from tests.helpers import assert_acked_once

PASSWORD = "correct horse battery staple"
RETRYABLE = (httpx.HTTPError, ApiError)


def new_device(path: Path, base_url: str, email: str, register: bool = False) -> SyncClient:
    c = SyncClient.open(path, base_url)
    if register:
        c.register(email, PASSWORD)
    c.login(email, PASSWORD, path.stem, "test")
    return c


def sync_until_done(c: SyncClient, deadline: float) -> None:
    """Retry `sync()` through the fault until the outbox is empty and the pull caught up."""
    while True:
        try:
            c.sync()
            if c.pending() == 0:
                return
        except RETRYABLE:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def assert_exactly_once(db: psycopg.Connection[Any], clients: list[SyncClient]) -> int:
    """Every acknowledged op of every client is in the log exactly once; return the total."""
    total = 0
    for c in clients:
        assert c.pending() == 0 and c.device_id is not None
        assert_acked_once(db, c.device_id, c.acked)
        total += c.acked
    return total


def assert_converged(clients: list[SyncClient]) -> None:
    keys = ("title", "pinned", "body", "deleted")
    snap = {n["id"]: {k: n.get(k) for k in keys} for n in clients[0].api.snapshot().notes}
    for c in clients:
        local = {n["id"]: {k: n[k] for k in keys} for n in c.notes(include_deleted=True)}
        assert local == snap


def edit_loop(c: SyncClient, stop: threading.Event, acks: list[int], errors: list[str]) -> None:
    """Make edits and push them until `stop`, riding through failed requests."""
    rnd = random.Random()
    notes: list[str] = []
    while not stop.is_set():
        try:
            if not notes or rnd.random() < 0.2:
                notes.append(c.create_note(title=f"n{len(notes)}", body="start "))
            n = rnd.choice(notes)
            if rnd.random() < 0.5:
                c.update_note(n, title=secrets.token_hex(3), pinned=rnd.random() < 0.5)
            else:
                c.insert_text(n, 0, f"w{secrets.token_hex(2)} ")
            c.sync()
            acks.append(c.acked)
        except RETRYABLE:
            time.sleep(0.02)
        except Exception as e:
            errors.append(repr(e))
            return


@pytest.fixture
def own_server(pg_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(pg_url, tmp_path / "server")
    proc.start()
    yield proc
    proc.stop()


def run_clients(clients: list[SyncClient], fault: Any, seconds: float) -> list[list[int]]:
    stop = threading.Event()
    acks: list[list[int]] = [[] for _ in clients]
    errors: list[str] = []
    threads = [threading.Thread(target=edit_loop, args=(c, stop, a, errors))
               for c, a in zip(clients, acks, strict=True)]
    for t in threads:
        t.start()
    try:
        fault(seconds)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors
    return acks


@pytest.mark.slow
def test_kill_9_the_server_under_pushes(
    own_server: ServerProcess, tmp_path: Path, db: psycopg.Connection[Any]
) -> None:
    email = f"kill{secrets.token_hex(5)}@example.com"
    clients = [new_device(tmp_path / f"d{i}.db", own_server.base_url, email, register=i == 0)
               for i in range(3)]
    rnd = random.Random()

    def crashes(seconds: float) -> None:
        for _ in range(4):
            time.sleep(rnd.uniform(0.1, seconds / 4))
            own_server.kill()
            time.sleep(rnd.uniform(0, 0.3))
            own_server.start()

    acks = run_clients(clients, crashes, 4.0)
    deadline = time.monotonic() + 30
    for c in clients:
        sync_until_done(c, deadline)
    for c in clients:
        c.sync()
    total = assert_exactly_once(db, clients)
    for c, seen in zip(clients, acks, strict=True):
        assert c.acked >= max(seen, default=0)  # nothing acknowledged went backwards
    assert total > 20 and all(seen for seen in acks)
    assert_converged(clients)
    for c in clients:
        c.close()


def connect(url: str, timeout: float = 20) -> psycopg.Connection[Any]:
    """The test's own connection, retried while a restarted PostgreSQL still starts up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return psycopg.connect(url, autocommit=True)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.slow
def test_postgres_restart_under_a_running_server(tmp_path: Path) -> None:
    from pgserver.postgres_server import get_server

    data = tmp_path / "pg"
    pg = get_server(data, cleanup_mode="stop")
    admin = pg.get_uri()
    url = fresh_database(admin)
    server = ServerProcess(url, tmp_path / "server")
    clients: list[SyncClient] = []
    down = False
    try:
        server.start()
        email = f"pg{secrets.token_hex(5)}@example.com"
        clients = [new_device(tmp_path / f"d{i}.db", server.base_url, email, register=i == 0)
                   for i in range(2)]
        a, b = clients
        n = a.create_note(title="before", body="one ")
        a.sync()
        b.bootstrap()

        pg.cleanup()  # the last handle in this process: stops PostgreSQL (pg_ctl stop)
        down = True
        a.update_note(n, title="while down")
        a.insert_text(n, 0, "zero ")
        t0 = time.monotonic()
        with pytest.raises(ApiError) as err:
            a.sync()
        # The server answers once its pool gives up waiting for a connection (10 s).
        assert time.monotonic() - t0 < 15, "a request hung while PostgreSQL was down"
        assert (err.value.status, err.value.code) == (503, "unavailable"), err.value
        r = httpx.get(f"{server.base_url}/v1/sync/pull", timeout=20,
                      headers={"Authorization": f"Bearer {a.store.get('access_token')}"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable", r.text
        assert a.pending() == 2  # nothing consumed, nothing lost

        # The same data dir again: the same socket, the server's URL still works.
        pg = get_server(data, cleanup_mode="stop")
        down = False
        assert pg.get_uri() == admin
        assert server.proc is not None and server.proc.poll() is None  # never restarted
        deadline = time.monotonic() + 30
        sync_until_done(a, deadline)
        sync_until_done(b, deadline)
        note = b.note(n)
        assert note is not None
        assert (note["title"], note["body"]) == ("while down", "zero one ")
        with connect(url) as db:
            assert assert_exactly_once(db, clients) == 4
        assert_converged(clients)
    finally:
        for c in clients:
            c.close()
        server.stop()
        if down:
            pg = get_server(data, cleanup_mode="stop")
        with connect(admin):  # waits out a PostgreSQL that is still starting up
            pass
        drop_database(admin, url)
        pg.cleanup()


class CuttingProxy:
    """A TCP proxy that, with probability `p` per chunk the server sends, closes both sides
    instead of forwarding it: the request reached the server, the response never arrives."""

    def __init__(self, target_port: int, p: float) -> None:
        self.target_port = target_port
        self.p = p
        self.port = free_port()
        self.cuts = 0
        self._sock = socket.create_server(("127.0.0.1", self.port))
        self._stop = threading.Event()
        self._rnd = random.Random()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pipe, args=(client, upstream, False),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True),
                             daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, response: bool) -> None:
        try:
            while data := src.recv(65536):
                if response:
                    with self._lock:
                        cut = self._rnd.random() < self.p
                        self.cuts += cut
                    if cut:
                        break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@pytest.mark.slow
def test_connections_cut_before_the_response(
    server: ServerProcess, tmp_path: Path, db: psycopg.Connection[Any]
) -> None:
    email = f"cut{secrets.token_hex(5)}@example.com"
    clients = [new_device(tmp_path / f"d{i}.db", server.base_url, email, register=i == 0)
               for i in range(2)]
    proxy = CuttingProxy(server.port, p=0.3)
    try:
        # From here on every request goes through the proxy.
        for i, c in enumerate(clients):
            c.close()
            clients[i] = SyncClient.open(tmp_path / f"d{i}.db", f"http://127.0.0.1:{proxy.port}")
        run_clients(clients, time.sleep, 3.0)
        assert proxy.cuts > 5
        deadline = time.monotonic() + 30
        for c in clients:
            sync_until_done(c, deadline)
        for c in clients:
            sync_until_done(c, deadline)
        assert assert_exactly_once(db, clients) > 10
    finally:
        proxy.close()
    for i, c in enumerate(clients):  # compare over a direct connection
        c.close()
        clients[i] = SyncClient.open(tmp_path / f"d{i}.db", server.base_url)
        clients[i].sync()
    assert_converged(clients)
    for c in clients:
        c.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
