"""Collab frames: made once for many peers, written at the end of the loop's turn.

A room sends the same bytes to every peer of a note. Through the ASGI stack each peer's
copy woke that peer's sender task and was framed again by Starlette and uvicorn: ten
people typing five keystrokes a second into a note make 450 of those a second, most of a
node's work on a steady collab load, and the wait for the tasks' turns most of a frame's
latency. Here a broadcast is an `Outgoing`, whose WebSocket frame is made once, when a
first peer needs it. A peer's messages still go through its queue (outbox.py), and a
`Flusher` writes every peer's queue straight onto its transport (`Direct`) once the
loop's current turn ends, in one write each: at a steady pace a frame leaves within the
turn that made it, and in a burst everything a turn queued for a peer leaves together,
its updates merged. A peer whose transport is paused (the kernel holds all it takes for
it) is left to its sender task, which waits until it drains.

`Direct` reaches the transport through the ASGI scope: the server's WebSocket protocol
(conns.GuardedWebSocket) puts one under `scope["extensions"][EXTENSION]`. Under another
server there is none and every frame takes the ASGI path.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Protocol

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from syncd.yproto import encode_update

EXTENSION = "syncd.direct"

log = logging.getLogger("syncd.collab")


class Outgoing:
    """One message for many peers: a document update (`update`: a peer's queue may merge
    it with the updates beside it) or any other whole y-websocket message. Its message
    and WebSocket frame (`wire`) are made once, on first use."""

    __slots__ = ("_wire", "data", "update")

    def __init__(self, data: bytes, *, update: bool) -> None:
        self.data = data
        self.update = update
        self._wire: bytes | None = None

    @property
    def message(self) -> bytes:
        return encode_update(self.data) if self.update else self.data

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = binary_frame(self.message)
        return self._wire


def binary_frame(payload: bytes) -> bytes:
    """A server's unmasked, unfragmented binary WebSocket frame."""
    return Frame(Opcode.BINARY, payload).serialize(mask=False)


class Direct:
    """Whole frames written to one WebSocket's transport, in the protocol's stead."""

    __slots__ = ("_socket", "listener")

    def __init__(self, socket: WebSocketsSansIOProtocol) -> None:
        self._socket = socket
        self.listener: Callable[[bytes], None] | None = None  # the protocol calls it

    def ready(self) -> bool:
        """The socket is open for data, without compression (a frame made once is the same
        bytes for every peer only uncompressed), and its transport is not paused."""
        s = self._socket
        return (s.handshake_complete and not s.close_sent and s.initial_response is None
                and s.conn.state is State.OPEN and not s.conn.extensions
                and s.writable.is_set() and not s.transport.is_closing())

    def listen(self, on_bytes: Callable[[bytes], None]) -> bool:
        """From now on, hand each binary message to `on_bytes` as it arrives, in the
        protocol's `data_received`, instead of queueing it for the app's task (which then
        gets only text frames and the disconnect). Only when nothing waits in that queue,
        so no message passes one received before it; False when something does."""
        if not self._socket.queue.empty():
            return False
        self.listener = on_bytes
        return True

    def write(self, frames: list[bytes]) -> None:
        self._socket.transport.writelines(frames)

    def send_buffer(self, size: int) -> None:
        """Cap the kernel's send buffer. Linux grows it up to megabytes for a peer that
        does not read, all of it raw updates; capped, what lags past it is queued where
        it is merged, and the peer catches up on fewer, smaller frames."""
        sock = self._socket.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


class Flushable(Protocol):
    def flush(self) -> None: ...


class Flusher:
    """The peers with messages queued in this turn of the event loop, flushed (`flush`)
    once it ends: one callback a turn for the node, however many peers and messages."""

    def __init__(self) -> None:
        self._marked: dict[Flushable, None] = {}  # in the order they were marked

    def mark(self, peer: Flushable) -> None:
        if not self._marked:
            asyncio.get_running_loop().call_soon(self._flush)
        self._marked[peer] = None

    def _flush(self) -> None:
        marked, self._marked = self._marked, {}
        for peer in marked:
            try:
                peer.flush()
            except Exception:  # one peer's failure must not leave the others' queues
                log.exception("could not flush a collab peer's frames")
