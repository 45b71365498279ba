"""One message for many collab peers, framed once and written straight to idle sockets.

A room sends the same bytes to every peer of a note. Through the ASGI stack each peer's
copy wakes that peer's sender task and is framed again by Starlette and uvicorn: ten
people typing five keystrokes a second into a note make 450 of those a second, most of a
node's work on a steady collab load, and the wait for a task's turn is most of a frame's
latency. So a broadcast is an `Outgoing`: its WebSocket frame is made once, when a first
peer needs it, and a peer whose socket is idle (nothing queued for it, nothing of its own
in flight, its transport below the high-water mark) writes those bytes straight onto its
transport (`Direct`) in the same turn of the event loop. A busy peer queues the message
as before (outbox.py), so each peer's frames keep their order.

`Direct` reaches the transport through the ASGI scope: the server's WebSocket protocol
(conns.GuardedWebSocket) puts one under `scope["extensions"][EXTENSION]`. Under another
server there is none and every frame takes the ASGI path.
"""

from __future__ import annotations

import socket

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from syncd.yproto import encode_update

EXTENSION = "syncd.direct"


class Outgoing:
    """One message for many peers: a document update (`update`: a peer's queue may merge
    it with the updates beside it) or any other whole y-websocket frame. Its WebSocket
    frame (`wire`) is made once, on first use."""

    __slots__ = ("_wire", "data", "update")

    def __init__(self, data: bytes, *, update: bool) -> None:
        self.data = data
        self.update = update
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = binary_frame(encode_update(self.data) if self.update else self.data)
        return self._wire


def binary_frame(payload: bytes) -> bytes:
    """A server's unmasked, unfragmented binary WebSocket frame."""
    return Frame(Opcode.BINARY, payload).serialize(mask=False)


class Direct:
    """Whole frames written to one WebSocket's transport, in the protocol's stead."""

    __slots__ = ("_socket",)

    def __init__(self, socket: WebSocketsSansIOProtocol) -> None:
        self._socket = socket

    def ready(self) -> bool:
        """The socket is open for data, without compression (a frame made once is the same
        bytes for every peer only uncompressed), and the kernel took all it was given: a
        peer that lags even a little gets its frames queued, and merged (outbox.py)."""
        s = self._socket
        return (s.handshake_complete and not s.close_sent and s.initial_response is None
                and s.conn.state is State.OPEN and not s.conn.extensions
                and s.writable.is_set() and not s.transport.get_write_buffer_size()
                and not s.transport.is_closing())

    def write(self, frame: bytes) -> None:
        self._socket.transport.write(frame)

    def send_buffer(self, size: int) -> None:
        """Cap the kernel's send buffer. Linux grows it up to megabytes for a peer that
        does not read, all of it raw updates; capped, what lags past it is queued where
        it is merged, and the peer catches up on fewer, smaller frames."""
        sock = self._socket.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
