"""The sync socket end to end (a real server) and the session's flow control in process."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from syncd import sync
from syncd.auth import Auth
from syncd.config import Settings
from syncd.db import Database
from syncd.fanout import BATCH_OVERHEAD, Batch, Hub, Subscriber
from syncd.messages import Op
from syncd.services import Services
from syncd.types import Principal
from syncd.ws_sync import Limits, Session
from tests.fix_server import ServerProcess
from tests.helpers import Api, Device, metric, new_id
from tests.ws_client import (
    close_code,
    events_until,
    hello,
    open_slow_socket,
    open_socket,
    recv,
    recv_type,
    send,
    seqs,
)

# --- resume and live ----------------------------------------------------------------------


def test_hello_backlog_then_live_including_own(server: ServerProcess, api: Api) -> None:
    a = api.user()
    a.push([a.set("note", new_id(), title=f"n{i}") for i in range(3)])
    b = a.login_again("phone")
    with open_socket(server.ws_url, b) as ws:
        assert hello(ws, 0) == 3
        backlog = events_until(ws, 3)
        assert seqs(backlog) == [1, 2, 3]
        assert backlog[0]["fields"] == {"title": "n0"}
        a.push([a.set("note", new_id(), title="live")])
        live = events_until(ws, 4)
        assert seqs(live) == [4] and live[0]["fields"] == {"title": "live"}
        # the device's own pushes come back too, after its ack or before it
        send(ws, {"type": "push", "ops": [b.set("note", new_id(), title="mine")]})
        frames: list[dict[str, Any]] = []
        own = events_until(ws, 5, frames=frames)
        if not frames:
            frames.append(recv_type(ws, "ack"))
        assert seqs(own) == [5] and own[0]["device_id"] == b.device_id
        assert frames == [{"type": "ack", "acked": 1, "cursor": 5,
                           "results": [{"client_seq": 1, "status": "applied"}]}]


def test_resume_is_gapless_while_another_device_pushes(server: ServerProcess, api: Api) -> None:
    a = api.user()
    a.push([a.set("note", new_id(), title=f"old{i}") for i in range(40)])
    b = a.login_again("phone")
    pusher_api = Api(server.base_url)
    a2 = Device(pusher_api, a.user_id, a.device_id, a.email, a.token, a.refresh_token,
                a.seq, a.counter)
    total = 40 + 60 * 3
    done = threading.Event()

    def push_concurrently() -> None:
        try:
            for i in range(60):
                a2.push([a2.set("note", new_id(), title=f"new{i}.{k}") for k in range(3)])
        finally:
            done.set()

    pusher = threading.Thread(target=push_concurrently)
    pusher.start()
    try:
        for cursor in (7, 20, 33):  # reconnect with old cursors while pushes commit
            with open_socket(server.ws_url, b) as ws:
                hello(ws, cursor)
                got = events_until(ws, cursor + 10)
                assert seqs(got) == list(range(cursor + 1, cursor + 1 + len(got)))
        with open_socket(server.ws_url, b) as ws:
            hello(ws, 5)
            done.wait(60)
            got = events_until(ws, total, timeout=60)
            assert seqs(got) == list(range(6, total + 1))  # each once, in order
    finally:
        pusher.join()
        pusher_api.close()


# --- push, ping, refusals -----------------------------------------------------------------


def test_push_ack_duplicate_gap_and_ping(server: ServerProcess, api: Api) -> None:
    a = api.user()
    with open_socket(server.ws_url, a) as ws:
        ops = [a.set("note", new_id(), title="one"), a.set("note", new_id(), title="two")]
        send(ws, {"type": "push", "ops": ops})
        ack = recv_type(ws, "ack")
        assert ack["acked"] == 2 and [r["status"] for r in ack["results"]] == ["applied"] * 2
        send(ws, {"type": "push", "ops": ops})  # re-push: nothing changes
        again = recv_type(ws, "ack")
        assert again["acked"] == 2 and again["cursor"] == ack["cursor"]
        assert [r["status"] for r in again["results"]] == ["duplicate"] * 2
        gap = a.set("note", new_id(), title="gap")
        gap["client_seq"] = 9
        send(ws, {"type": "push", "ops": [gap]})
        err = recv_type(ws, "error")
        assert err["code"] == "client_seq_gap" and err["details"] == {"expected": 3}
        send(ws, {"type": "hello", "cursor": "nope"})
        assert recv_type(ws, "error")["code"] == "invalid_request"
        send(ws, {"type": "ping"})
        assert recv_type(ws, "pong") == {"type": "pong"}  # the socket survived
    assert a.pull() and len(a.pull()) == 2


@pytest.mark.parametrize("frame", ["not json", '{"type": "shout"}', "[1, 2]", '{"cursor": 1}'])
def test_a_frame_that_is_not_a_protocol_message_closes_4409(
        server: ServerProcess, api: Api, frame: str) -> None:
    a = api.user()
    with open_socket(server.ws_url, a) as ws:
        ws.send(frame)
        assert close_code(ws) == 4409


def test_oversize_frame_is_refused(server: ServerProcess, api: Api) -> None:
    a = api.user()
    with open_socket(server.ws_url, a) as ws:
        ws.send('{"type": "ping", "pad": "' + "x" * (9 * 1024 * 1024) + '"}')
        assert recv_type(ws, "error")["code"] == "too_large"
        send(ws, {"type": "ping"})
        assert recv_type(ws, "pong")["type"] == "pong"


def test_bad_token_closes_4401(server: ServerProcess, api: Api) -> None:
    a = api.user()
    for token in ("garbage", a.token[:-4] + "AAAA"):
        with open_socket(server.ws_url, a, token=token) as ws:
            assert close_code(ws) == 4401
    try:
        with connect(f"{server.ws_url}/v1/sync/ws", open_timeout=10) as ws:
            assert close_code(ws) == 4401
    except InvalidStatus as e:  # refusing at the handshake is allowed too
        assert e.response.status_code == 401


def test_msgpack_subprotocol(server: ServerProcess, api: Api) -> None:
    a = api.user()
    a.push([a.set("note", new_id(), title="packed")])
    with open_socket(server.ws_url, a, subprotocols=[Subprotocol("msgpack")]) as ws:
        assert ws.subprotocol == "msgpack"
        ws.send(msgspec.msgpack.encode({"type": "hello", "cursor": 0}))
        frame = ws.recv(timeout=10)
        assert isinstance(frame, bytes)
        assert msgspec.msgpack.decode(frame) == {"type": "welcome", "head": 1}
        frame = ws.recv(timeout=10)
        assert isinstance(frame, bytes)
        events = msgspec.msgpack.decode(frame)
        assert events["type"] == "events" and events["events"][0]["fields"]["title"] == "packed"


# --- revocation ---------------------------------------------------------------------------


def test_revoking_a_device_closes_its_socket(server: ServerProcess, api: Api) -> None:
    a = api.user()
    b = a.login_again("phone")
    with open_socket(server.ws_url, b) as ws_b, open_socket(server.ws_url, a) as ws_a:
        hello(ws_b)
        hello(ws_a)
        assert a.api.delete(f"/v1/devices/{b.device_id}", headers=a.headers).status_code == 204
        assert close_code(ws_b) == 4401
        send(ws_a, {"type": "ping"})  # the other device is untouched
        assert recv_type(ws_a, "pong")["type"] == "pong"


def test_logout_closes_the_socket(server: ServerProcess, api: Api) -> None:
    a = api.user()
    with open_socket(server.ws_url, a) as ws:
        hello(ws)
        assert a.api.post("/v1/auth/logout", headers=a.headers).status_code == 204
        assert close_code(ws) == 4401
    with open_socket(server.ws_url, a) as ws:  # and the token no longer opens one
        assert close_code(ws) == 4401


# --- flow control: a server of its own with tight limits ----------------------------------


TIGHT_BYTES = 256 * 1024


@pytest.fixture(scope="module")
def tight_server(pg_url: str, tmp_root: Path) -> Any:
    proc = ServerProcess(pg_url, tmp_root / "tight", env={
        "SYNCD_WS_SEND_TIMEOUT": "1", "SYNCD_WS_QUEUE_BYTES": str(TIGHT_BYTES),
        "SYNCD_WS_CLOSE_TIMEOUT": "120", "SYNCD_WS_IDLE_TIMEOUT": "120"})
    proc.start()
    yield proc
    proc.stop()


def test_a_client_that_does_not_read_is_cut_off_and_loses_nothing(tight_server: ServerProcess,
                                                                  ) -> None:
    with Api(tight_server.base_url) as api:
        a = api.user()
        b = a.login_again("slow")
        with open_slow_socket(tight_server.ws_url, b) as ws:
            hello(ws)
            note = new_id()
            total = 0
            for round_ in range(80):  # ~14 MB of events: more than the buffers hold, in
                # commits of ~170 kB: one fits the socket's budget, two do not
                ops = [a.set("note", note if k == 0 else new_id(), title=f"{round_}.{k}",
                             tags=[secrets.token_urlsafe(48) for _ in range(50)])
                       for k in range(50)]
                total = a.push(ops)["cursor"]
            # The server's own accounting: what waited for the socket stayed in its budget.
            peak = metric(tight_server.base_url, "syncd_ws_waiting_bytes_peak")
            assert 100_000 < peak <= TIGHT_BYTES, peak
            got: list[dict[str, Any]] = []
            frames: list[dict[str, Any]] = []
            code = None
            try:  # now read: what was buffered, then a resync and more, or the end
                while not got or got[-1]["seq"] < total:
                    frame = recv(ws, 60)
                    if frame["type"] == "events":
                        got += frame["events"]
                    else:
                        frames.append(frame)
            except ConnectionClosed as e:
                code = e.rcvd.code if e.rcvd else 1006
        # The server noticed: a resync or a 4408 close (the close frame may have been cut
        # with the connection if it could not be written). Either way nothing is lost.
        assert code in (4408, 1006) or any(f["type"] == "resync" for f in frames), (code, frames)
        assert seqs(got) == list(range(1, len(got) + 1))
        with open_socket(tight_server.ws_url, b) as ws2:
            hello(ws2, len(got))
            rest = events_until(ws2, total, timeout=60) if len(got) < total else []
        assert seqs(got + rest) == list(range(1, total + 1))


def test_an_idle_client_is_closed(pg_url: str, tmp_root: Path) -> None:
    proc = ServerProcess(pg_url, tmp_root / "idle", env={"SYNCD_WS_IDLE_TIMEOUT": "1"})
    proc.start()
    try:
        with Api(proc.base_url) as api:
            a = api.user()
            with open_socket(proc.ws_url, a) as ws:
                hello(ws)
                assert close_code(ws, timeout=30) == 4408
    finally:
        proc.stop()


# --- in process: the session against a socket whose sends the test holds back ------------


class HeldSocket:
    """Stands in for Starlette's WebSocket; `gate` holds sends back like a client not reading."""

    def __init__(self, token: str) -> None:
        self.scope: dict[str, Any] = {"type": "websocket", "subprotocols": []}
        self.query_params = {"token": token}
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.frames: list[dict[str, Any]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.held = asyncio.Event()  # a send is waiting at the gate
        self.closed: tuple[int, str] | None = None

    async def accept(self, subprotocol: str | None = None) -> None:
        pass

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send(self, message: dict[str, Any]) -> None:
        if not self.gate.is_set():
            self.held.set()
            await self.gate.wait()
        self.frames.append(json.loads(message["text"]))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed = (code, reason or "")

    def say(self, msg: dict[str, Any]) -> None:
        self.inbox.put_nowait({"type": "websocket.receive", "text": json.dumps(msg)})

    def events(self) -> list[dict[str, Any]]:
        return [e for f in self.frames if f["type"] == "events" for e in f["events"]]


async def until(cond: Any, limit: float = 15) -> None:
    """Poll a condition with a bounded wait (the frames list has no event to wait on)."""
    async with asyncio.timeout(limit):
        while not cond():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


class Rig:
    """One user's device in process: real Database, Auth and Hub, and a held socket."""

    def __init__(self, pg_url: str) -> None:
        self.db = Database(pg_url, 1, 4)
        self.hub = Hub()
        self.auth = Auth(self.db, "in-process-test-secret-0123456789abcdef", 900, 3600)
        self.seq = 0

    async def __aenter__(self) -> Rig:
        await self.db.open()
        email = f"u{secrets.token_hex(6)}@example.com"
        await self.auth.register(email, "correct horse battery", "")
        login = await self.auth.login(email, "correct horse battery", "dev", "test")
        self.token = login["access_token"]
        self.who = Principal(login["user"]["id"], login["device_id"])
        self.svc = Services(Settings(), self.db, self.auth, self.hub)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.db.close()

    async def push(self, hub: Hub | None = None) -> None:
        self.seq += 1
        op = Op(self.seq, f"{int(time.time() * 1000):013d}.{self.seq:06d}.{self.who.device_id}",
                "note", uuid.uuid4(), "set", {"title": f"t{self.seq}"})
        await sync.push(self.db, hub or self.hub, self.who, [op])

    def session(self, limits: Limits) -> tuple[HeldSocket, Session, asyncio.Task[None]]:
        ws = HeldSocket(self.token)
        session = Session(ws, self.svc, limits)  # type: ignore[arg-type]
        return ws, session, asyncio.create_task(session.run())


def test_subscriber_queue_is_bounded() -> None:
    async def main() -> None:
        hub = Hub()
        sub = Subscriber(uuid.uuid4(), limit=8 * BATCH_OVERHEAD)
        hub.subscribe(sub)
        for _ in range(10_000):
            hub.deliver({sub.user_id: []})
            assert sub.queued <= 8 * BATCH_OVERHEAD
        assert sub.overflowed and sub.peak == 8 * BATCH_OVERHEAD

    asyncio.run(main())


def test_overflow_sends_resync_then_carries_on_from_the_log(pg_url: str) -> None:
    async def main() -> None:
        async with Rig(pg_url) as rig:
            ws, session, task = rig.session(Limits(queue_bytes=1000, send_timeout=60))
            ws.say({"type": "hello", "cursor": 0})
            await until(lambda: ws.frames)
            ws.gate.clear()
            await rig.push()  # the streamer takes it and is held sending it
            await asyncio.wait_for(ws.held.wait(), 15)
            for _ in range(6):
                await rig.push()
                assert session.sub.queued + session.sub.sending <= 1000
            assert session.sub.overflowed and 0 < session.sub.peak <= 1000
            ws.gate.set()
            await until(lambda: ws.events() and ws.events()[-1]["seq"] == 7)
            kinds = [f["type"] for f in ws.frames]
            assert kinds[:3] == ["welcome", "events", "resync"], kinds
            assert ws.frames[2] == {"type": "resync", "cursor": 1}
            assert [e["seq"] for e in ws.events()] == list(range(1, 8))
            ws.inbox.put_nowait({"type": "websocket.disconnect"})
            await asyncio.wait_for(task, 15)
            assert rig.hub.subscriber_count() == 0

    asyncio.run(main())


def test_a_gap_in_live_events_is_filled_from_the_log(pg_url: str) -> None:
    async def main() -> None:
        async with Rig(pg_url) as rig:
            ws, _session, task = rig.session(Limits())
            ws.say({"type": "hello", "cursor": 0})
            await until(lambda: ws.frames)
            elsewhere = Hub()  # commits whose live delivery is lost, as on another node
            await rig.push(elsewhere)
            await rig.push(elsewhere)
            page = await sync.pull(rig.db, rig.who, 0, 10)
            rig.hub.deliver({rig.who.user_id: page.events[1:]})  # seq 2 without seq 1
            await until(lambda: len(ws.events()) >= 2)
            rig.hub.deliver({rig.who.user_id: page.events[:1]})  # seq 1, late: a duplicate
            await rig.push()
            await until(lambda: ws.events()[-1]["seq"] == 3)
            assert [e["seq"] for e in ws.events()] == [1, 2, 3]
            ws.inbox.put_nowait({"type": "websocket.disconnect"})
            await asyncio.wait_for(task, 15)

    asyncio.run(main())


def test_a_send_the_client_never_takes_closes_4408(pg_url: str) -> None:
    async def main() -> None:
        async with Rig(pg_url) as rig:
            ws, session, task = rig.session(Limits(queue_bytes=1500, send_timeout=0.5))
            ws.say({"type": "hello", "cursor": 0})
            await until(lambda: ws.frames)
            ws.gate.clear()
            for _ in range(20):
                await rig.push()
                assert session.sub.queued + session.sub.sending <= 1500
            await asyncio.wait_for(ws.held.wait(), 15)
            ws.gate.set = lambda: None  # type: ignore[method-assign]  # never again
            await asyncio.wait_for(task, 15)
            assert ws.closed is not None and ws.closed[0] == 4408
            assert rig.hub.subscriber_count() == 0

    asyncio.run(main())


def test_a_commit_is_encoded_once_for_every_socket_of_a_user() -> None:
    import uuid as _uuid

    import msgspec

    from syncd.messages import Event
    from syncd.ws_sync import _shared_frame

    user = _uuid.uuid4()
    batch = Batch(Event(seq=s, entity="note", id=_uuid.uuid4(), kind="set", hlc="h",
                        user_id=user, at="2026-11-21T00:00:00Z", fields={"title": str(s)})
                  for s in (7, 8))
    first, size = _shared_frame(batch, False)
    assert _shared_frame(batch, False)[0] is first  # the second socket reuses the bytes
    assert _shared_frame(batch, True)[0] is not first  # never mixes encodings
    assert size == len(first["text"])
    decoded = msgspec.json.decode(first["text"])
    assert decoded["type"] == "events" and decoded["cursor"] == 8
    assert [e["fields"]["title"] for e in decoded["events"]] == ["7", "8"]
    other = [Event(seq=9, entity="note", id=_uuid.uuid4(), kind="set", hlc="h", user_id=user,
                   at="2026-11-21T00:00:00Z")]
    assert msgspec.json.decode(_shared_frame(other, False)[0]["text"])["cursor"] == 9
