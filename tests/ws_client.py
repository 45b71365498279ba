"""A small sync-socket client for tests: connect, hello, read frames with bounded waits."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests.helpers import Device


def open_socket(ws_url: str, dev: Device, token: str | None = None, *,
                subprotocols: Sequence[Subprotocol] | None = None,
                sock: socket.socket | None = None, max_queue: int | None = 16,
                compression: str | None = "deflate") -> ClientConnection:
    return connect(f"{ws_url}/v1/sync/ws?token={token or dev.token}", open_timeout=10,
                   max_size=32 * 1024 * 1024, subprotocols=subprotocols, sock=sock,
                   max_queue=max_queue, compression=compression)


def open_slow_socket(ws_url: str, dev: Device, rcvbuf: int = 64 * 1024) -> ClientConnection:
    """A socket with a small fixed receive buffer (no autotuning) that stops reading after one
    message: what the server sees from a client that does not read."""
    where = urlsplit(ws_url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((where.hostname, where.port))
    return open_socket(ws_url, dev, sock=sock, max_queue=1, compression=None)


def send(ws: ClientConnection, msg: dict[str, Any]) -> None:
    ws.send(json.dumps(msg))


def recv(ws: ClientConnection, timeout: float = 15) -> dict[str, Any]:
    frame = ws.recv(timeout=timeout)
    return dict(json.loads(frame))


def recv_type(ws: ClientConnection, kind: str, timeout: float = 15) -> dict[str, Any]:
    """The next frame of this type, skipping `events` frames (which arrive at any time)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = recv(ws, max(0.01, deadline - time.monotonic()))
        if frame["type"] == kind:
            return frame
        assert frame["type"] == "events", frame


def hello(ws: ClientConnection, cursor: int = 0) -> int:
    send(ws, {"type": "hello", "cursor": cursor})
    welcome = recv(ws)
    assert welcome["type"] == "welcome", welcome
    return int(welcome["head"])


def events_until(ws: ClientConnection, seq: int, timeout: float = 30,
                 frames: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every event received until one with `seq` arrives; other frames go to `frames`."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not got or got[-1]["seq"] < seq:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for seq {seq}; got up to {got[-1:]}"
        frame = recv(ws, left)
        if frame["type"] == "events":
            assert frame["cursor"] == frame["events"][-1]["seq"]
            got += frame["events"]
        elif frames is not None:
            frames.append(frame)
        else:
            raise AssertionError(f"unexpected frame {frame}")
    return got


def close_code(ws: ClientConnection, timeout: float = 15) -> int:
    """Read (and drop) frames until the server closes; return its close code."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    except ConnectionClosed as e:
        return e.rcvd.code if e.rcvd else 1006
    raise AssertionError("the server did not close the socket")


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [int(e["seq"]) for e in events]
