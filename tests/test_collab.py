"""Collaborative editing over `/v1/collab/{note_id}`: pycrdt peers and the stock npm
y-websocket client against a real syncd process, with the log, snapshot and REST agreeing.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pycrdt import Doc, Text
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from syncd import yproto
from tests.fix_server import ServerProcess
from tests.helpers import Api, Device, metric, new_id, text_update
from tests.node_env import collab_peer_command, ensure_node_modules

TIMEOUT = 10.0


class YPeer:
    """A y-websocket peer: a pycrdt Doc synced through syncd.yproto over a sync socket."""

    def __init__(self, server: ServerProcess, note_id: str, token: str | None) -> None:
        query = f"?token={token}" if token is not None else ""
        self.ws: ClientConnection = connect(
            f"{server.ws_url}/v1/collab/{note_id}{query}", max_size=None,
            open_timeout=10).__enter__()
        self.doc: Doc[Any] = Doc()
        self.text = self.doc.get("body", type=Text)
        self.denied: list[str] = []
        self.awareness: list[yproto.AwarenessEntry] = []
        self.synced = False
        self.close_code: int | None = None

    def __enter__(self) -> YPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.ws.__exit__(None, None, None)

    def send(self, frame: bytes | str) -> None:
        self.ws.send(frame)

    def pump(self, until: Callable[[], bool] = lambda: False, timeout: float = TIMEOUT) -> bool:
        """Handle incoming frames until `until()` holds or `timeout`; False if it never did."""
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                frame = self.ws.recv(timeout=left)
            except TimeoutError:
                return until()
            except ConnectionClosed as e:
                self.close_code = e.rcvd.code if e.rcvd else None
                return until()
            assert isinstance(frame, bytes)
            for msg in yproto.decode_frame(frame):
                self._handle(msg)
        return True

    def _handle(self, msg: yproto.Message) -> None:
        match msg:
            case yproto.SyncStep1(sv):
                self.send(yproto.encode_sync_step2(self.doc.get_update(sv)))
            case yproto.SyncStep2(update):
                self.doc.apply_update(update)
                self.synced = True
            case yproto.Update(update):
                self.doc.apply_update(update)
            case yproto.Awareness(update):
                self.awareness += yproto.decode_awareness(update)
            case yproto.Auth(reason):
                self.denied.append(reason)

    def sync(self) -> YPeer:
        self.send(yproto.encode_sync_step1(self.doc.get_state()))
        assert self.pump(lambda: self.synced), "no sync step 2 from the server"
        return self

    def edit(self, change: Callable[[Text], None]) -> None:
        before = self.doc.get_state()
        change(self.text)
        self.send(yproto.encode_update(self.doc.get_update(before)))

    def wait_text(self, check: Callable[[str], bool]) -> str:
        assert self.pump(lambda: check(str(self.text))), str(self.text)
        return str(self.text)

    def wait_closed(self, timeout: float = TIMEOUT) -> int | None:
        self.pump(lambda: self.close_code is not None, timeout)
        return self.close_code


@pytest.fixture
def owner(api: Api) -> Device:
    return api.user("owner")


def make_note(dev: Device, body: str = "") -> str:
    nid = new_id()
    ops = [dev.set("note", nid, title="collab")]
    if body:
        upd, _ = text_update(None, lambda t: t.insert(0, body))
        ops.append(dev.op("note", nid, "text", field="body",
                          update=base64.b64encode(upd).decode()))
    dev.push(ops)
    return nid


def stored_text(dev: Device, nid: str) -> str:
    snap = {n["id"]: n for n in dev.snapshot()["notes"]}
    return str(snap[nid]["body"])


def wait_stored(dev: Device, nid: str, expected: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while stored_text(dev, nid) != expected:
        assert time.monotonic() < deadline, (stored_text(dev, nid), expected)
        time.sleep(0.05)


def log_rows(db: psycopg.Connection[Any], nid: str) -> int:
    row = db.execute("SELECT count(DISTINCT op_id) FROM events WHERE entity_id = %s",
                     (nid,)).fetchone()
    assert row is not None
    return int(row[0])


def prepend(s: str) -> Callable[[Text], None]:
    return lambda t: t.insert(0, s)


def append(s: str) -> Callable[[Text], None]:
    return lambda t: t.insert(len(t), s)


def body_from_log(dev: Device, nid: str) -> str:
    doc: Doc[Any] = Doc()
    text = doc.get("body", type=Text)
    for e in dev.pull():
        if e["id"] == nid and e["kind"] == "text":
            doc.apply_update(base64.b64decode(e["update"]))
    return str(text)


# --- two pycrdt peers -------------------------------------------------------------------


def test_two_pycrdt_peers_converge_and_persist(server: ServerProcess, owner: Device,
                                               db: psycopg.Connection[Any]) -> None:
    nid = make_note(owner, "hello")
    other = owner.login_again("tablet")
    read = metric(server.base_url, "syncd_collab_messages_read_direct_total")
    writes = metric(server.base_url, "syncd_collab_writes_total")
    with YPeer(server, nid, owner.token) as a, YPeer(server, nid, other.token) as b:
        a.sync(), b.sync()
        assert str(a.text) == str(b.text) == "hello"
        for i in range(20):  # concurrent bursts: neither waits for the other
            a.edit(prepend(f"a{i} "))
            b.edit(append(f" b{i}"))
        want = lambda s: all(f"a{i} " in s and f" b{i}" in s for i in range(20))  # noqa: E731
        text = a.wait_text(want)
        assert b.wait_text(lambda s: s == text) == text
    wait_stored(owner, nid, text)
    assert body_from_log(owner, nid) == text
    r = owner.get(f"/v1/notes/{nid}")
    assert r.status_code == 200 and r.json()["body"] == text
    # bursts were coalesced: far fewer log rows than the 40 keystroke updates
    assert log_rows(db, nid) < 2 + 40
    assert metric(server.base_url, "syncd_collab_writes_total") > writes
    # once a socket's first messages were handled, the rest were handled as they arrived
    assert metric(server.base_url, "syncd_collab_messages_read_direct_total") >= read + 38
    # and what the peers typed counts as written, like a push's text ops
    stats = owner.get("/v1/stats", params={"period": "week"}).json()
    assert stats["total_words"] == len(text.split()) == 41


def test_reconnect_with_nothing_new_appends_nothing(server: ServerProcess, owner: Device,
                                                    db: psycopg.Connection[Any]) -> None:
    nid = make_note(owner, "base")
    with YPeer(server, nid, owner.token) as a:
        a.sync()
        a.edit(lambda t: t.insert(4, " text"))
        state = a.doc.get_update()
    wait_stored(owner, nid, "base text")
    before = log_rows(db, nid)
    with YPeer(server, nid, owner.token) as again:
        again.doc.apply_update(state)
        again.sync()  # the server's step 1 is answered with a step 2 holding nothing new
        again.send(yproto.encode_sync_step2(again.doc.get_update()))  # the whole state again
        again.send(yproto.encode_update(b"\x00\x00"))  # an empty update is harmless
        again.send(yproto.encode_query_awareness())
        again.pump(timeout=0.5)
        assert again.close_code is None
    time.sleep(0.3)
    assert log_rows(db, nid) == before
    assert stored_text(owner, nid) == "base text"


# --- the stock npm client ---------------------------------------------------------------


@pytest.fixture(scope="module")
def node_dir() -> Path:
    return ensure_node_modules()


def node_peer(node_dir: Path, server: ServerProcess, nid: str, token: str,
              *args: str) -> subprocess.Popen[str]:
    command = collab_peer_command(node_dir, "--url", f"{server.ws_url}/v1/collab",
                                  "--room", nid, "--token", token, *args)
    return subprocess.Popen(command, cwd=node_dir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def node_result(proc: subprocess.Popen[str]) -> tuple[int, dict[str, Any], str]:
    out, err = proc.communicate(timeout=30)
    return proc.returncode, json.loads(out), err


def test_node_websocket_provider_and_pycrdt_converge(server: ServerProcess, owner: Device,
                                                     node_dir: Path) -> None:
    nid = make_note(owner, "middle")
    with YPeer(server, nid, owner.token) as py:
        py.sync()
        node = node_peer(node_dir, server, nid, owner.token, "--insert", "node ", "--at", "0",
                         "--wait-for", "node", "--wait-for", "python", "--timeout-ms", "15000")
        assert py.pump(lambda: "node" in str(py.text), 15), str(py.text)
        py.edit(lambda t: t.insert(len(t), " python"))
        code, out, err = node_result(node)
        assert code == 0, err
        assert out["synced"]
        text = py.wait_text(lambda s: s == out["text"])
    assert sorted(text.split()) == ["middle", "node", "python"]
    wait_stored(owner, nid, text)
    assert owner.get(f"/v1/notes/{nid}").json()["body"] == text
    assert body_from_log(owner, nid) == text

    # a late stock reader loads the stored document
    late = node_peer(node_dir, server, nid, owner.token, "--wait-for", "python")
    code, out, err = node_result(late)
    assert code == 0, err
    assert out == {"text": text, "synced": True}


def test_two_node_peers_converge(server: ServerProcess, owner: Device, node_dir: Path) -> None:
    nid = make_note(owner)
    both = ["--wait-for", "alpha", "--wait-for", "omega", "--timeout-ms", "15000"]
    first = node_peer(node_dir, server, nid, owner.token, "--insert", "alpha ", "--at", "0",
                      *both)
    second = node_peer(node_dir, server, nid, owner.token, "--insert", " omega", *both)
    (c1, o1, e1), (c2, o2, e2) = node_result(first), node_result(second)
    assert (c1, c2) == (0, 0), (e1, e2)
    assert o1["text"] == o2["text"]
    # Both may insert into the empty text before seeing the other: Yjs then orders the two
    # insertions by client id, so " omega" can land before "alpha " (no space between).
    assert o1["text"] in ("alpha  omega", " omegaalpha ")
    wait_stored(owner, nid, o1["text"])


# --- the sync path reaches live peers ---------------------------------------------------


def test_device_push_reaches_a_live_peer(server: ServerProcess, owner: Device) -> None:
    nid = make_note(owner, "one")
    with YPeer(server, nid, owner.token) as live:
        live.sync()
        state = base64.b64decode(
            next(n for n in owner.snapshot()["notes"] if n["id"] == nid)["body_state"])
        upd, _ = text_update(state, lambda t: t.insert(3, " two"))
        owner.push([owner.op("note", nid, "text", field="body",
                             update=base64.b64encode(upd).decode())])
        assert live.wait_text(lambda s: s == "one two") == "one two"
        r = owner.api.patch(f"/v1/notes/{nid}", json={"body": "one two three"},
                            headers=owner.headers)
        assert r.status_code == 200, r.text
        assert live.wait_text(lambda s: s == "one two three") == "one two three"


def test_a_peer_joining_a_live_room_takes_its_document(server: ServerProcess,
                                                       owner: Device) -> None:
    """A room with peers is joined as it is: the newcomer gets every edit the room holds
    (a peer's, a device's push) and the note's stored document is not read again. Once its
    peers left, the idle room reads it on the next join: a push made meanwhile is there."""
    nid = make_note(owner, "one")

    def reads() -> float:
        return metric(server.base_url, "syncd_collab_documents_read_total")

    def push(change: Callable[[Text], None]) -> None:
        state = base64.b64decode(
            next(n for n in owner.snapshot()["notes"] if n["id"] == nid)["body_state"])
        upd, _ = text_update(state, change)
        owner.push([owner.op("note", nid, "text", field="body",
                             update=base64.b64encode(upd).decode())])

    before = reads()
    with YPeer(server, nid, owner.token) as first:
        first.sync()
        assert reads() == before + 1  # a new room: the stored document
        first.edit(append(" two"))
        first.synced = False
        first.sync()  # answered in order: the server applied the edit
        push(prepend("zero "))  # reaches the live room through the hub
        first.wait_text(lambda s: s == "zero one two")
        with YPeer(server, nid, owner.token) as second:
            second.sync()
            assert str(second.text) == "zero one two"
        assert reads() == before + 1
    wait_stored(owner, nid, "zero one two")
    deadline = time.monotonic() + TIMEOUT  # both sockets closed: the room is idle (warm)
    while metric(server.base_url, "syncd_open_sockets") > 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    push(append(" three"))  # nobody connected: no room hears it
    with YPeer(server, nid, owner.token) as third:
        third.sync()
        assert str(third.text) == "zero one two three"
    assert reads() == before + 2


# --- access -----------------------------------------------------------------------------


def test_refusals(server: ServerProcess, api: Api, owner: Device) -> None:
    nid = make_note(owner, "private")
    stranger = api.user("stranger")
    for note, token, code in [(new_id(), owner.token, 4404), (nid, stranger.token, 4403),
                              (nid, "not-a-token", 4401), (nid, None, 4401),
                              ("not-a-uuid", owner.token, 4404)]:
        with YPeer(server, note, token) as peer:
            assert peer.wait_closed() == code, (note, token)
            assert peer.denied, "permission-denied comes before the close"
            assert str(peer.text) == ""


def test_viewer_reads_but_cannot_write(server: ServerProcess, api: Api,
                                       db: psycopg.Connection[Any]) -> None:
    owner, viewer = api.user("owner"), api.user("viewer")
    pid, nid = new_id(), new_id()
    upd, _ = text_update(None, lambda t: t.insert(0, "shared"))
    owner.push([owner.set("project", pid, title="Book"),
                owner.set("note", nid, title="c1", project_id=pid),
                owner.op("note", nid, "text", field="body", update=base64.b64encode(upd).decode())])
    r = api.post(f"/v1/projects/{pid}/members", json={"email": viewer.email, "role": "viewer"},
                 headers=owner.headers)
    assert r.status_code == 201, r.text
    before = log_rows(db, nid)
    with YPeer(server, nid, owner.token) as writer, YPeer(server, nid, viewer.token) as reader:
        writer.sync(), reader.sync()
        assert str(reader.text) == "shared"
        reader.edit(lambda t: t.insert(0, "vandal "))
        assert reader.pump(lambda: bool(reader.denied))
        writer.edit(lambda t: t.insert(len(t), " words"))
        reader.pump(lambda: "words" in str(reader.text))
        assert reader.close_code is None  # still open, still receiving
        assert "words" in str(reader.text)
        writer.pump(timeout=0.3)
        assert str(writer.text) == "shared words"
    wait_stored(owner, nid, "shared words")
    assert log_rows(db, nid) == before + 1


# --- awareness --------------------------------------------------------------------------


def awareness(client_id: int, clock: int, state: dict[str, Any]) -> bytes:
    entry = yproto.AwarenessEntry(client_id, clock, json.dumps(state))
    return yproto.encode_awareness(yproto.encode_awareness_update([entry]))


def test_awareness_relayed_echoed_and_removed(server: ServerProcess, owner: Device,
                                              db: psycopg.Connection[Any]) -> None:
    nid = make_note(owner, "x")
    before = log_rows(db, nid)
    with YPeer(server, nid, owner.token) as a, YPeer(server, nid, owner.token) as b:
        a.sync(), b.sync()
        a.send(awareness(111, 1, {"user": "ann"}))
        assert b.pump(lambda: any(e.client_id == 111 for e in b.awareness))
        assert a.pump(lambda: any(e.client_id == 111 for e in a.awareness))  # echoed back
        with YPeer(server, nid, owner.token) as c:  # a newcomer, and one that asks
            c.send(yproto.encode_query_awareness())
            assert c.pump(lambda: sum(e.client_id == 111 for e in c.awareness) >= 2)
        a.ws.close()
        assert b.pump(lambda: any(e.client_id == 111 and e.removed for e in b.awareness))
    assert log_rows(db, nid) == before  # awareness is never stored


# --- bad input --------------------------------------------------------------------------

BAD_FRAMES: list[tuple[str, bytes | str, int]] = [
    ("garbage", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 4409),
    ("unknown type", yproto.write_var_uint(7) + b"\x00", 4409),
    ("unknown sync sub-type", b"\x00\x05\x00", 4409),
    ("truncated", b"\x00\x02\x10abc", 4409),
    ("corrupt update", yproto.encode_update(b"\x01\xff\xff\xff\xff\x0f\x00\x07"), 4409),
    ("bad awareness json", yproto.encode_awareness(yproto.encode_awareness_update(
        [yproto.AwarenessEntry(5, 1, "{not json")])), 4409),
    ("text frame", '{"type": "hello"}', 4409),
    ("oversize", b"\x00\x02" + b"\x00" * (5 * 1024 * 1024), 1009),
]


@pytest.fixture
def shared_note(server: ServerProcess, owner: Device) -> Iterator[tuple[str, YPeer]]:
    nid = make_note(owner, "intact")
    with YPeer(server, nid, owner.token) as bystander:
        bystander.sync()
        yield nid, bystander


@pytest.mark.parametrize(("name", "frame", "code"), BAD_FRAMES, ids=[b[0] for b in BAD_FRAMES])
def test_bad_input_closes_only_that_peer(server: ServerProcess, owner: Device,
                                         shared_note: tuple[str, YPeer], name: str,
                                         frame: bytes | str, code: int) -> None:
    nid, bystander = shared_note
    with YPeer(server, nid, owner.token) as bad:
        bad.sync()
        bad.send(frame)
        assert bad.wait_closed() == code
    bystander.edit(lambda t: t.insert(len(t), " still"))
    with YPeer(server, nid, owner.token) as check:
        check.sync()
        assert check.wait_text(lambda s: s == "intact still") == "intact still"
    assert bystander.close_code is None
    wait_stored(owner, nid, "intact still")


def test_an_evicted_room_and_its_document_are_freed() -> None:
    """The room's document observer must not hold the room: the reference from the
    document's Rust side would make a cycle the collector cannot see, so the warm-room
    bound would bound nothing."""
    import gc
    import uuid
    import weakref

    from syncd.db import Database
    from syncd.fanout import Hub
    from syncd.rooms import Rooms

    rooms = Rooms(Database("postgresql://unused"), Hub(), warm=0)  # never connects
    doc: Doc[Any] = Doc()
    doc.get("body", type=Text).insert(0, "hello")
    room = rooms.get(uuid.uuid4(), doc.get_update())
    assert room.text() == "hello"
    ref = weakref.ref(room)
    del room
    rooms.release(ref())  # type: ignore[arg-type]  # no peers: evicted past warm=0
    assert not rooms.rooms
    gc.collect()
    assert ref() is None


def test_a_room_whose_peers_all_close_is_read_again() -> None:
    """A closing peer may have lost its access (its user's log then no longer carries the
    note's changes): a room left with closing peers only is not joined as it is."""
    import uuid

    from syncd.db import Database
    from syncd.fanout import Hub
    from syncd.outbox import Outbox
    from syncd.rooms import Rooms
    from syncd.types import Principal
    from syncd.ws_collab import Connection

    rooms = Rooms(Database("postgresql://unused"), Hub())  # never connects
    nid = uuid.uuid4()
    assert rooms.live(nid) is None  # no room yet
    room = rooms.get(nid, None)
    assert rooms.live(nid) is None  # no peers
    peers = [Connection(None, Principal(uuid.uuid4(), uuid.uuid4()),  # type: ignore[arg-type]
                        Outbox(rooms.peer_bytes, rooms.tally)) for _ in range(2)]
    for peer in peers:
        room.join(peer)
    assert rooms.live(nid) is room
    peers[0].close(4403, "you were removed from the note's project")
    assert rooms.live(nid) is room  # the other peer's subscriber still hears the note
    peers[1].close(4403, "you were removed from the note's project")
    assert rooms.live(nid) is None
    assert rooms.get(nid, None) is room  # the stored document is merged into it
