"""Every TCP connection's deadlines and caps: uvicorn's protocol classes, guarded.

uvicorn closes idle keep-alive connections (`SYNCD_KEEP_ALIVE`) but gives a request no
deadline: a silent connection, or one that sends half its headers, was held forever. Here:

- a request's headers must arrive within `header_timeout` of the connection (or of the
  request's first byte on a kept-alive one), and its body within `body_timeout` after them;
  a late request gets `408 request_timeout` (or nothing, when it sent nothing) and the close;
- open connections are capped overall and per client IP. A connection over a cap is not
  served, but it is not dropped blind either: up to `RESERVE` of them at a time get
  `REFUSAL_WINDOW` seconds to send a request, `/health` and `/metrics` are answered and
  anything else gets `503 too_many_connections` with `Retry-After`. Past the reserve, a
  connection is closed at once. So an operator's health check gets through a flood of idle
  connections;
- a response that ends the connection before the request's body has arrived (a 413) does
  not reset it under the client (RFC 9112 §9.6): the server half-closes after the response,
  reads and discards up to `LINGER_BYTES` of the body, and closes when it ends. Closing with
  unread bytes in the socket sends a reset, and async clients then lose the response.

A WebSocket keeps its slot until it closes (`GuardedWebSocket`), and offers the app its
transport under the scope's `syncd.direct` extension (frames.py).
"""

from __future__ import annotations

import asyncio
import resource
from collections import Counter
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from syncd.config import Settings
from syncd.frames import EXTENSION, Direct
from syncd.headers import BASE, DEFAULT_CSP
from syncd.limits import MAX_BODY_BYTES
from syncd.messages import encode

RESERVE = 32  # connections over a cap being answered at once
REFUSAL_WINDOW = 2.0  # seconds such a connection has to send its request
RESERVED_PATHS = frozenset({"/health", "/metrics"})  # for operators, past a cap
LINGER_BYTES = 2 * MAX_BODY_BYTES  # body read and discarded after an early response
FD_HEADROOM = 256  # descriptors kept for the pool, Redis, logs and the reserve


class Connections:
    """Open connections overall and per client IP, shared by every protocol instance, with
    the counts the metrics report (`refused` by reason, `timed_out` by what was late)."""

    def __init__(self, settings: Settings) -> None:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        cap = settings.max_connections
        if soft != resource.RLIM_INFINITY:  # past the descriptor limit nothing is answered
            cap = max(1, min(cap, soft - FD_HEADROOM - RESERVE))
        self.cap = cap
        self.per_ip = settings.max_connections_per_ip
        self.header_timeout = settings.header_timeout
        self.body_timeout = settings.body_timeout
        self.open = 0
        self.by_ip: Counter[str] = Counter()
        self.refusing = 0
        self._slots: dict[object, tuple[str, bool]] = {}  # transport → (ip, served)
        self.refused: Counter[str] = Counter()
        self.timed_out: Counter[str] = Counter()

    def admit(self, transport: object, ip: str) -> bool | None:
        """True: serve it; False: refusal mode (/health only); None: close it now."""
        if self.open < self.cap and not (self.per_ip and self.by_ip[ip] >= self.per_ip):
            self.open += 1
            self.by_ip[ip] += 1
            self._slots[transport] = (ip, True)
            return True
        self.refused["per_ip" if self.open < self.cap else "total"] += 1
        if self.refusing >= RESERVE:
            self.refused["reserve_full"] += 1
            return None
        self.refusing += 1
        self._slots[transport] = (ip, False)
        return False

    def release(self, transport: object) -> None:
        slot = self._slots.pop(transport, None)
        if slot is None:
            return
        ip, served = slot
        if not served:
            self.refusing -= 1
            return
        self.open -= 1
        self.by_ip[ip] -= 1
        if self.by_ip[ip] <= 0:
            del self.by_ip[ip]


def _error(status: int, code: str, message: str, retry_after: int | None = None) -> bytes:
    """A whole HTTP/1.1 error response that closes the connection."""
    body = encode({"error": {"code": code, "message": message, "details": {}}})
    head = [f"HTTP/1.1 {status} {message}", "content-type: application/json",
            f"content-length: {len(body)}", "connection: close",
            f"content-security-policy: {DEFAULT_CSP}",
            *(f"{k.decode()}: {v.decode()}" for k, v in BASE)]
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


REQUEST_TIMEOUT = _error(408, "request_timeout", "Request Timeout")


async def _too_many(scope: Any, receive: Any, send: Any) -> None:
    body = encode({"error": {"code": "too_many_connections", "details": {},
                             "message": "the server is at its connection limit; retry later"}})
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"), (b"connection", b"close"),
        (b"content-security-policy", DEFAULT_CSP.encode()), *BASE]})
    await send({"type": "http.response.body", "body": body})


class _CycleTransport:
    """The transport a request cycle writes to: its close() lingers (see the module doc)."""

    def __init__(self, protocol: GuardedHttp) -> None:
        self._protocol = protocol
        self._transport = protocol.transport

    def write(self, data: bytes) -> None:
        self._transport.write(data)

    def is_closing(self) -> bool:
        return self._transport.is_closing() or self._protocol.lingering

    def close(self) -> None:
        self._protocol.close_gracefully()


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines, caps and a graceful early close."""

    table: ClassVar[Connections]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.lingering = False
        self.drained = 0
        self.began = False  # a byte of the current request has arrived
        self.timer: asyncio.TimerHandle | None = None
        self.served = self.table.admit(transport, self.client[0] if self.client else "")
        if self.served is None:
            transport.close()
            return
        self._arm(self.table.header_timeout if self.served
                  else min(REFUSAL_WINDOW, self.table.header_timeout))

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.table.release(self.transport)
        super().connection_lost(exc)

    # --- deadlines --------------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self.timer = self.loop.call_later(seconds, self._late)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _late(self) -> None:
        self.timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        in_body = cycle is not None and cycle.more_body and not self.began
        self.table.timed_out["body" if in_body else "header"] += 1
        if self.lingering:
            pass  # the response is out; the rest of the body is not worth waiting for
        elif in_body and cycle is not None and not cycle.response_started:
            cycle.disconnected = True  # the app's receive() says so; its sends are dropped
            cycle.message_event.set()
            self.transport.write(REQUEST_TIMEOUT)
        elif self.began and not in_body:
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.began = True
        if self.timer is None:
            self._arm(self.table.header_timeout)

    def on_headers_complete(self) -> None:
        self.began = False
        upgrading = self.parser.should_upgrade() and self._should_upgrade()
        refuse = not self.served and httptools.parse_url(self.url).path.decode(
            "latin-1") not in RESERVED_PATHS
        app = self.app
        if refuse:
            self.app = _too_many
        try:
            super().on_headers_complete()
        finally:
            self.app = app
        if upgrading:
            return
        self.cycle.transport = _CycleTransport(self)  # type: ignore[assignment]
        if not self.served:
            self.cycle.keep_alive = False  # one answer, then the reserve slot is free again
        if self._has_body():
            self._arm(self.table.body_timeout)
        else:
            self._disarm()

    def _has_body(self) -> bool:
        for name, value in self.headers:
            if name == b"content-length":
                return value.strip() not in (b"0", b"")
            if name == b"transfer-encoding":
                return True
        return False

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self.lingering:
            self.transport.close()  # the body has been drained: nothing unread is left
        elif not self.began:
            self._disarm()

    def _should_upgrade(self) -> bool:
        return bool(self.served) and super()._should_upgrade()

    def _unsupported_upgrade_warning(self) -> None:
        if self.served:  # a refused WebSocket is answered 503, not worth a warning each
            super()._unsupported_upgrade_warning()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()  # the WebSocket session has deadlines of its own
        super().handle_websocket_upgrade()

    # --- an early response: close without losing it -----------------------------------------

    def close_gracefully(self) -> None:
        cycle = self.cycle
        if (cycle is None or not cycle.more_body or self.transport.is_closing()
                or not self.transport.can_write_eof()):
            self.transport.close()
            return
        self.lingering = True
        self.transport.write_eof()  # the response, then our end: the client reads it whole
        self.flow.resume_reading()
        self._arm(self.table.body_timeout)

    def data_received(self, data: bytes) -> None:
        if not self.lingering:
            super().data_received(data)
            return
        self.drained += len(data)
        if self.drained > LINGER_BYTES:
            self.transport.close()
            return
        try:
            self.parser.feed_data(data)  # on_message_complete closes at the body's end
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            self.transport.close()

    def on_response_complete(self) -> None:
        if not self.lingering:
            super().on_response_complete()


class GuardedWebSocket(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, handing back the connection's slot when it closes and
    offering the app its transport for frames made once for many sockets (frames.py)."""

    table: ClassVar[Connections]
    direct: Direct | None = None  # what the app is offered, while the socket is open

    def send_receive_event_to_app(self) -> None:
        """A whole message: binary ones go straight to the app's listener when it has one
        (frames.Direct.listen), not through the ASGI queue."""
        listener = self.direct.listener if self.direct is not None else None
        if listener is None or self.curr_msg_data_type != "bytes" or self.close_sent:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        listener(data)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # none when the handshake was refused
        if scope is not None:
            self.direct = Direct(self)
            scope["extensions"][EXTENSION] = {"direct": self.direct}

    def connection_lost(self, exc: Exception | None) -> None:
        self.table.release(self.transport)
        scope = getattr(self, "scope", None)
        if scope is not None:  # the extension refers back to this protocol: no cycle left
            scope["extensions"].pop(EXTENSION, None)
        self.direct = None
        super().connection_lost(exc)


def protocols(table: Connections) -> tuple[type[GuardedHttp], type[GuardedWebSocket]]:
    """The HTTP and WebSocket protocol classes for `uvicorn.run(http=…, ws=…)`."""
    http = type("Http", (GuardedHttp,), {"table": table})
    ws = type("WebSocket", (GuardedWebSocket,), {"table": table})
    return http, ws
