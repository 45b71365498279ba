"""Live sync over `/v1/sync/ws`: push the outbox, receive events as they commit.

The session says `hello {cursor}` with the stored cursor, so a reconnect
resumes exactly where the store is. Events at or below the cursor are skipped
and a gap (an events frame starting past `cursor + 1`) is filled by an HTTP
pull, which also serves `resync`. A lost connection is retried with
exponential backoff and full jitter; a refused token is refreshed first.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import quote

import httpx
import msgspec
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from syncd_client.errors import AuthError, SyncdClientError
from syncd_client.messages import (
    Ack,
    Error,
    Events,
    Pong,
    PushResponse,
    Resync,
    Welcome,
    decode_server_frame,
    hello,
    ping,
    push_frame,
)
from syncd_client.types import Json

if TYPE_CHECKING:
    from syncd_client.client import SyncClient

log = logging.getLogger(__name__)

BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
PING_EVERY = 25.0
POLL = 0.2
CLOSE_UNAUTHORISED = 4401


def backoff(attempt: int, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return (rng or random).uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(attempt, 16)))


def ws_url(server_url: str, token: str) -> str:
    base = server_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return f"{base}/v1/sync/ws?token={quote(token, safe='')}"


class LiveSync:
    """One background session loop; `stop()` ends it within about `POLL` seconds."""

    def __init__(self, client: SyncClient) -> None:
        self.client = client
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ws: ClientConnection | None = None
        self._welcomed = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if not self.running:
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name="syncd-live", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None

    def run(self) -> None:
        """The reconnect loop; returns when `stop()` is called."""
        attempt = 0
        while not self._stop.is_set():
            try:
                self._session()
            except (
                OSError,
                TimeoutError,
                ConnectionClosed,
                InvalidHandshake,
                httpx.TransportError,
                SyncdClientError,
            ) as exc:
                log.info("sync socket lost: %r", exc)
            self.connected.clear()
            if self._stop.is_set():
                break
            if self._welcomed:
                attempt = 0
            self._stop.wait(backoff(attempt))
            attempt += 1

    def _session(self) -> None:
        client = self.client
        token = client.store.get("access_token") or ""
        self._welcomed = False
        try:
            ws = connect(ws_url(client.server_url, token), open_timeout=10)
        except InvalidStatus as exc:
            if exc.response.status_code == 401:
                self._refresh(token)
            raise
        with ws:
            self._ws = ws
            try:
                self._converse(ws)
            except ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code == CLOSE_UNAUTHORISED:
                    self._refresh(token)
                raise
            finally:
                self._ws = None

    def _refresh(self, token: str) -> None:
        if not self.client.api.auth.refresh_if_stale(self.client.api.http, token):
            raise AuthError(401, "unauthorised", "refresh failed: log in again")

    def _converse(self, ws: ClientConnection) -> None:
        client = self.client
        ws.send(hello(client.cursor))
        inflight: list[Json] | None = None
        blocked = False  # the server refused a push outright: do not resend it in a loop
        client.outbox_changed.set()
        last_ping = time.monotonic()
        while not self._stop.is_set():
            if inflight is None and not blocked and client.outbox_changed.is_set():
                client.outbox_changed.clear()
                batch = client.outbox.next_batch()
                if batch:
                    inflight = batch
                    ws.send(push_frame(batch))
            if time.monotonic() - last_ping > PING_EVERY:
                ws.send(ping())
                last_ping = time.monotonic()
            try:
                data = ws.recv(timeout=POLL)
            except TimeoutError:
                continue
            try:
                frame = decode_server_frame.decode(data)
            except msgspec.MsgspecError:
                # A frame type added after this client was written: ignore it.
                log.debug("ignoring unknown frame %r", data[:200])
                continue
            match frame:
                case Welcome():
                    self._welcomed = True
                    self.connected.set()
                case Events(events=events):
                    self._events(events)
                case Ack(acked=acked, cursor=cursor, results=results):
                    if inflight is not None:
                        client.outbox.on_response(inflight, PushResponse(acked, cursor, results))
                    inflight = None
                    if client.pending():
                        client.outbox_changed.set()
                case Resync():
                    client.pull()
                case Error(code="client_seq_gap", details=details) if details:
                    client.outbox.on_gap(int(details["expected"]))
                    inflight = None
                    client.outbox_changed.set()
                case Error(code=code, message=message):
                    log.warning("sync socket error %s: %s", code, message)
                    if inflight is not None:
                        inflight, blocked = None, True
                case Pong():
                    pass

    def _events(self, events: list[Json]) -> None:
        client = self.client
        if events and int(events[0]["seq"]) > client.cursor + 1:
            client.pull()  # a gap: fill it from the log, then skip what the pull covered
        client.apply_events(events)
