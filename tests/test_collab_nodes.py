"""Collab across nodes: two `syncd serve` processes sharing one PostgreSQL and one Redis.

y-websocket peers on node A and node B edit the same note and converge with the stored
document; awareness set on one node reaches the other, and so does its removal when the
peer disconnects. Also the bus's per-note channel in process: delivery to other nodes
only, and dropped (never queued up or nudged) while Redis is unreachable.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import psycopg

from syncd import yproto
from syncd.bus import Bus
from syncd.fanout import Hub
from tests.fix_server import free_port
from tests.helpers import Api
from tests.test_bus import two_nodes
from tests.test_collab import (
    YPeer,
    append,
    awareness,
    log_rows,
    make_note,
    prepend,
    stored_text,
    wait_stored,
)

TIMEOUT = 20.0


def has_state(peer: YPeer, client_id: int) -> bool:
    return any(e.client_id == client_id and not e.removed for e in peer.awareness)


def has_removal(peer: YPeer, client_id: int) -> bool:
    return any(e.client_id == client_id and e.removed for e in peer.awareness)


def test_collab_peers_on_two_nodes_converge_and_share_awareness(
        pg_url: str, tmp_root: Path, redis_url: str, db: psycopg.Connection[Any]) -> None:
    node_a, node_b = two_nodes(pg_url, tmp_root, redis_url)
    try:
        with Api(node_a.base_url) as api_a, Api(node_b.base_url) as api_b:
            owner = api_a.user("laptop")
            tablet = api_b.login(owner.email, "tablet")
            nid = make_note(owner, "hello")
            with YPeer(node_a, nid, owner.token) as a, YPeer(node_b, nid, tablet.token) as b:
                a.sync(), b.sync()
                assert str(a.text) == str(b.text) == "hello"
                for i in range(20):  # concurrent bursts on both nodes
                    a.edit(prepend(f"a{i} "))
                    b.edit(append(f" b{i}"))

                def want(s: str) -> bool:
                    return all(f"a{i} " in s and f" b{i}" in s for i in range(20))

                assert a.pump(lambda: want(str(a.text)), TIMEOUT), str(a.text)
                assert b.pump(lambda: want(str(b.text)), TIMEOUT), str(b.text)
                text = str(a.text)
                assert b.pump(lambda: str(b.text) == text, TIMEOUT)
                assert a.pump(lambda: str(a.text) == str(b.text), TIMEOUT)
                wait_stored(owner, nid, text, TIMEOUT)
                assert stored_text(tablet, nid) == text
                assert tablet.get(f"/v1/notes/{nid}").json()["body"] == text

                before = log_rows(db, nid)
                a.send(awareness(111, 1, {"user": "ann", "node": "a"}))
                assert b.pump(lambda: has_state(b, 111), TIMEOUT), b.awareness
                b.send(awareness(222, 1, {"user": "bob", "node": "b"}))
                assert a.pump(lambda: has_state(a, 222), TIMEOUT), a.awareness
                # a newcomer on B learns A's peer from B's room (remote states it has seen)
                with YPeer(node_b, nid, tablet.token) as c:
                    c.send(yproto.encode_query_awareness())
                    assert c.pump(lambda: has_state(c, 111) and has_state(c, 222), TIMEOUT)
                a.ws.close()
                assert b.pump(lambda: has_removal(b, 111), TIMEOUT), b.awareness
                assert not has_removal(b, 222)
                # B's room forgot A's peer: a query now answers B's own state only
                b.awareness.clear()
                b.send(yproto.encode_query_awareness())
                assert b.pump(lambda: has_state(b, 222), TIMEOUT)
                assert not has_state(b, 111)
            assert log_rows(db, nid) == before  # awareness is never stored
            assert stored_text(owner, nid) == text
    finally:
        node_a.stop()
        node_b.stop()


def test_a_peer_on_a_new_node_learns_existing_awareness(
        pg_url: str, tmp_root: Path, redis_url: str) -> None:
    """The room on B subscribes after A's peer announced itself: B asks, A answers."""
    node_a, node_b = two_nodes(pg_url, tmp_root, redis_url)
    try:
        with Api(node_a.base_url) as api_a:
            owner = api_a.user("laptop")
            nid = make_note(owner, "x")
            with YPeer(node_a, nid, owner.token) as a:
                a.sync()
                a.send(awareness(333, 4, {"user": "ann"}))
                assert a.pump(lambda: has_state(a, 333), TIMEOUT)  # the echo: A has it
                with YPeer(node_b, nid, owner.token) as b:
                    b.sync()
                    assert b.pump(lambda: has_state(b, 333), TIMEOUT), b.awareness
    finally:
        node_a.stop()
        node_b.stop()


# --- the bus's per-note channel, in process -----------------------------------------------


def test_doc_channel_reaches_other_nodes_only(redis_url: str) -> None:
    async def main() -> None:
        hub_a, hub_b = Hub(), Hub()
        async with Bus(redis_url, hub_a) as bus_a, Bus(redis_url, hub_b) as bus_b:
            assert hub_a.docs is bus_a and hub_b.docs is bus_b
            note = uuid.uuid4()
            got_a: asyncio.Queue[bytes | None] = asyncio.Queue()
            got_b: asyncio.Queue[bytes | None] = asyncio.Queue()
            bus_a.subscribe_doc(note, got_a.put_nowait)
            bus_b.subscribe_doc(note, got_b.put_nowait)
            async with asyncio.timeout(15):  # each subscription is confirmed with None
                assert await got_a.get() is None
                assert await got_b.get() is None
                bus_a.publish_doc(note, b"from a")
                assert await got_b.get() == b"from a"
                bus_b.publish_doc(note, b"from b")
                assert await got_a.get() == b"from b"
            assert got_a.empty() and got_b.empty()  # a node skips its own messages
            bus_b.unsubscribe_doc(note, got_b.put_nowait)
            assert note not in bus_b.docs
        assert hub_a.docs is None and hub_b.docs is None

    asyncio.run(main())


def test_doc_messages_are_dropped_without_redis() -> None:
    async def main() -> None:
        hub = Hub()
        async with Bus(f"redis://127.0.0.1:{free_port()}/0", hub) as bus:
            note = uuid.uuid4()
            bus.subscribe_doc(note, lambda data: None)
            for _ in range(1000):
                bus.publish_doc(note, b"awareness")  # ephemeral: nothing waits for Redis
            assert bus.outbox.qsize() == 0
            assert not bus.missed and not bus.missed_all

    asyncio.run(main())
