"""Connections (syncd/conns.py) against a real server over real sockets: header and body
deadlines, idle keep-alive, the caps overall and per client IP with /health answered past
them, and a 413 that an async client reads whole."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fix_server import ServerProcess
from tests.helpers import Api, metric


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30,
                                    source_address=(source, 0))
    return sock


def read_to_end(sock: socket.socket, limit: float = 30) -> bytes:
    """What the server sends until it closes (bounded: a server that never closes fails)."""
    sock.settimeout(limit)
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


@pytest.fixture(scope="module")
def strict(pg_url: str, tmp_root: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(pg_url, tmp_root / "strict", env={
        "SYNCD_HEADER_TIMEOUT": "1", "SYNCD_BODY_TIMEOUT": "1", "SYNCD_KEEP_ALIVE": "1"})
    proc.start()
    yield proc
    proc.stop()


def test_silent_connections_and_half_sent_headers_are_closed(strict: ServerProcess) -> None:
    before = metric(strict.base_url, "syncd_requests_timed_out_total", 'part="header"')
    silent = [connect(strict.port) for _ in range(20)]
    half = [connect(strict.port) for _ in range(20)]
    for sock in half:
        sock.sendall(b"GET /v1/notes HTTP/1.1\r\nHost: x\r\nAuthorization: Bea")
    try:
        assert all(read_to_end(s) == b"" for s in silent)  # closed, nothing said
        for sock in half:
            answer = read_to_end(sock)
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            assert b'"code":"request_timeout"' in answer
    finally:
        for sock in silent + half:
            sock.close()
    after = metric(strict.base_url, "syncd_requests_timed_out_total", 'part="header"')
    assert after - before >= 40
    assert httpx.get(f"{strict.base_url}/health", timeout=30).status_code == 200


def test_a_body_that_stops_arriving_gets_408(strict: ServerProcess) -> None:
    with connect(strict.port) as sock:
        sock.sendall(b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"em")
        answer = read_to_end(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert metric(strict.base_url, "syncd_requests_timed_out_total", 'part="body"') >= 1


def test_an_idle_keep_alive_connection_is_closed(strict: ServerProcess) -> None:
    with connect(strict.port) as sock:
        sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(30)
        assert sock.recv(12) == b"HTTP/1.1 200"
        read_to_end(sock)  # the rest of the response, then the close after 1 s idle


@pytest.fixture(scope="module")
def capped(pg_url: str, tmp_root: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(pg_url, tmp_root / "capped", env={
        "SYNCD_MAX_CONNECTIONS": "12", "SYNCD_MAX_CONNECTIONS_PER_IP": "8",
        "SYNCD_HEADER_TIMEOUT": "120"})
    proc.start()
    yield proc
    proc.stop()


def client(source: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=30)


def refused(response: httpx.Response) -> bool:
    return (response.status_code == 503 and response.headers.get("retry-after") == "1"
            and response.json()["error"]["code"] == "too_many_connections")


def test_at_the_caps_new_clients_are_refused_and_health_answers(capped: ServerProcess) -> None:
    url = capped.base_url
    held: list[socket.socket] = []
    try:
        held += [connect(capped.port) for _ in range(8)]  # this IP's cap
        with client("127.0.0.1") as c:
            assert refused(c.get(f"{url}/v1/auth/me"))
            assert c.get(f"{url}/health").status_code == 200
        with client("127.0.0.2") as c:  # another IP is still served
            assert c.get(f"{url}/v1/auth/me").status_code == 401
        held += [connect(capped.port, "127.0.0.2") for _ in range(4)]  # the overall cap
        with client("127.0.0.3") as c:
            assert refused(c.get(f"{url}/v1/auth/me"))
            health = c.get(f"{url}/health")
            assert health.status_code == 200
            assert health.headers["connection"] == "close"  # its reserve slot is freed
        with connect(capped.port, "127.0.0.3") as sock:  # a WebSocket is refused the same
            sock.sendall(b"GET /v1/sync/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                         b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            assert read_to_end(sock).startswith(b"HTTP/1.1 503 ")
        assert metric(url, "syncd_connections_refused_total", 'reason="per_ip"') >= 2
        assert metric(url, "syncd_connections_refused_total", 'reason="total"') >= 3
    finally:
        for sock in held:
            sock.close()
    with client("127.0.0.1") as c:  # the slots come back as connections close
        for _ in range(300):
            if c.get(f"{url}/v1/auth/me", headers={"Connection": "close"}).status_code == 401:
                break
            asyncio.run(asyncio.sleep(0.1))
        else:
            raise AssertionError("the released connections were never counted down")


def test_an_oversize_body_is_read_as_413_by_an_async_client(server: ServerProcess,
                                                             api: Api) -> None:
    dev = api.user()
    big = b"x" * (9 * 1024 * 1024)

    async def chunks() -> object:
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]

    async def main() -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as c:
            # declared: refused before the body is read, and the body drained, not reset
            r = await c.post("/v1/sync/push", content=big, headers={
                **dev.headers, "Content-Type": "application/json"})
            assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
            # chunked: refused once the body passes the limit
            r = await c.post("/v1/sync/push", content=chunks(), headers={  # type: ignore[arg-type]
                **dev.headers, "Content-Type": "application/json"})
            assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
            r = await c.get("/v1/auth/me", headers=dev.headers)  # the client carries on
            assert r.status_code == 200

    asyncio.run(main())
