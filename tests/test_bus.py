"""The Redis bus between nodes: in process with two hubs, and two real server processes,
including a Redis outage in the middle (a redis-server of the test's own)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.bus import Bus
from syncd.fanout import Hub, Subscriber
from syncd.messages import Event
from tests.fix_server import RedisProcess, ServerProcess, free_port
from tests.helpers import Api, new_id
from tests.ws_client import close_code, events_until, hello, open_socket, seqs


@pytest.fixture
def own_redis(tmp_root: Path) -> Iterator[RedisProcess]:
    proc = RedisProcess(tmp_root / f"redis-{uuid.uuid4().hex[:8]}")
    proc.start()
    yield proc
    proc.stop()


def event(seq: int, user: uuid.UUID) -> Event:
    return Event(seq, "note", uuid.uuid4(), "set", "0.0.x", user, "2026-01-01T00:00:00Z",
                 fields={"title": str(seq)})


async def next_batch(sub: Subscriber, skip_nudges: bool = True) -> list[Event]:
    async with asyncio.timeout(15):
        while True:
            batch = await sub.get()
            if batch or not skip_nudges:
                return batch


# --- in process ---------------------------------------------------------------------------


def test_two_hubs_share_events_and_revocations(redis_url: str) -> None:
    async def main() -> None:
        hub_a, hub_b = Hub(), Hub()
        async with Bus(redis_url, hub_a), Bus(redis_url, hub_b):
            user, device = uuid.uuid4(), uuid.uuid4()
            on_a, on_b = Subscriber(user, uuid.uuid4()), Subscriber(user, device)
            hub_a.subscribe(on_a)
            hub_b.subscribe(on_b)
            # each bus confirms the user's subscription with a nudge: now it is live
            assert await next_batch(on_a, skip_nudges=False) == []
            assert await next_batch(on_b, skip_nudges=False) == []
            await hub_a.publish({user: [event(1, user)]})
            assert [e.seq for e in await next_batch(on_b)] == [1]
            assert [e.seq for e in await next_batch(on_a)] == [1]
            await hub_b.publish({user: [event(2, user)]})
            assert [e.seq for e in await next_batch(on_a)] == [2]
            assert [e.seq for e in await next_batch(on_b)] == [2]
            assert on_a.empty()  # a node does not deliver its own events twice
            hub_a.close_device(device, "device revoked")
            while on_b.closed is None:  # closing wakes the queue
                await next_batch(on_b, skip_nudges=False)
            assert on_b.closed == "device revoked" and on_a.closed is None
            other = uuid.uuid4()  # nobody here watches this user: nothing arrives
            await hub_a.publish({other: [event(1, other)]})
            assert other not in hub_b.by_user

    asyncio.run(main())


def test_publishing_without_redis_never_fails() -> None:
    async def main() -> None:
        hub = Hub()
        async with Bus(f"redis://127.0.0.1:{free_port()}/0", hub) as bus:
            user = uuid.uuid4()
            for seq in range(1, 50):
                await hub.publish({user: [event(seq, user)]})  # returns at once, no error
            async with asyncio.timeout(15):
                while not bus.outbox.empty():  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            assert user in bus.missed  # to be nudged when Redis answers

    asyncio.run(main())


# --- two server processes -----------------------------------------------------------------


def two_nodes(pg_url: str, tmp_root: Path, redis_url: str) -> tuple[ServerProcess, ...]:
    tag = uuid.uuid4().hex[:8]
    nodes = tuple(ServerProcess(pg_url, tmp_root / f"node-{tag}-{i}", redis_url=redis_url)
                  for i in range(2))
    for node in nodes:
        node.start()
    return nodes


def test_a_push_on_one_node_reaches_a_socket_on_the_other(pg_url: str, tmp_root: Path,
                                                           redis_url: str) -> None:
    node_a, node_b = two_nodes(pg_url, tmp_root, redis_url)
    try:
        with Api(node_a.base_url) as api_a, Api(node_b.base_url) as api_b:
            phone = api_a.user("phone")
            laptop = api_b.login(phone.email, "laptop")
            with open_socket(node_a.ws_url, phone) as ws:
                hello(ws)
                laptop.push([laptop.set("note", new_id(), title="from b")])
                got = events_until(ws, 1)
                assert got[0]["fields"] == {"title": "from b"}
                for i in range(20):
                    laptop.push([laptop.set("note", new_id(), title=f"b{i}")])
                assert seqs(got + events_until(ws, 21)) == list(range(1, 22))
                # revoking on node B closes the socket on node A
                r = api_b.delete(f"/v1/devices/{phone.device_id}", headers=laptop.headers)
                assert r.status_code == 204
                assert close_code(ws) == 4401
    finally:
        node_a.stop()
        node_b.stop()


def test_a_redis_outage_loses_nothing(pg_url: str, tmp_root: Path,
                                      own_redis: RedisProcess) -> None:
    node_a, node_b = two_nodes(pg_url, tmp_root, own_redis.url)
    try:
        with Api(node_a.base_url) as api_a, Api(node_b.base_url) as api_b:
            phone = api_a.user("phone")
            laptop = api_b.login(phone.email, "laptop")
            with open_socket(node_a.ws_url, phone) as ws:
                hello(ws)
                laptop.push([laptop.set("note", new_id(), title="before")])
                got = events_until(ws, 1)
                own_redis.stop()
                acked: list[dict[str, Any]] = []
                for i in range(10):  # acked while Redis is down
                    acked.append(laptop.push([laptop.set("note", new_id(), title=f"down{i}")]))
                assert [r["acked"] for r in acked] == list(range(2, 12))
                own_redis.start()  # same address, empty: the bus reconnects and catches up
                got += events_until(ws, 11, timeout=60)
                laptop.push([laptop.set("note", new_id(), title="after")])
                got += events_until(ws, 12, timeout=30)
                assert seqs(got) == list(range(1, 13))
                assert got[-1]["fields"] == {"title": "after"}
    finally:
        node_a.stop()
        node_b.stop()
