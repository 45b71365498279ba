"""Large batches planned off the event loop (syncd/offload.py): a large push is planned in a
worker thread and lands exactly as it would inline, a small one stays on the loop, and the
server answers other requests while a large batch is being planned."""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

import httpx

from syncd.offload import LARGE_BYTES, LARGE_OPS
from tests.fix_server import ServerProcess
from tests.helpers import Api, Device, metric, new_id, text_update


def planned(server: ServerProcess, where: str) -> float:
    return metric(server.base_url, "syncd_batches_planned_total", f'where="{where}"')


def typing(dev: Device, note: str, state: bytes | None, words: list[str]
           ) -> tuple[list[dict[str, Any]], bytes]:
    """One text op per word appended, as an offline device queues them; the final state."""
    ops = []
    for word in words:
        update, state = text_update(state, lambda t, w=word: t.insert(len(t), w))
        ops.append(dev.op("note", note, "text", field="body",
                          update=base64.b64encode(update).decode()))
    assert state is not None
    return ops, state


def body(dev: Device, note: str) -> str:
    r = dev.api.get(f"/v1/notes/{note}", headers=dev.headers)
    assert r.status_code == 200, r.text
    return str(r.json()["body"])


def test_a_large_push_is_planned_in_a_thread_and_a_small_one_inline(
        server: ServerProcess) -> None:
    with Api(server.base_url) as api:
        dev = api.user()
        note = new_id()
        dev.push([dev.set("note", note, title="Chapter")])
        loop, thread = planned(server, "loop"), planned(server, "thread")
        ops, state = typing(dev, note, None, [f"w{i} " for i in range(LARGE_OPS)])
        out = dev.push(ops)
        assert [r["status"] for r in out["results"]] == ["applied"] * LARGE_OPS
        assert planned(server, "thread") == thread + 1
        assert planned(server, "loop") == loop
        expected = "".join(f"w{i} " for i in range(LARGE_OPS))
        assert body(dev, note) == expected
        # The document the thread made was saved: the next (small) edit builds on it.
        ops, state = typing(dev, note, state, ["end"])
        dev.push(ops)
        assert planned(server, "loop") == loop + 1
        assert planned(server, "thread") == thread + 1
        assert body(dev, note) == expected + "end"
        # A refusal inside a threaded batch is still the op's alone.
        ops, _ = typing(dev, note, state, [f"x{i} " for i in range(LARGE_OPS)])
        ops[3]["update"] = base64.b64encode(b"\x01\x02junk").decode()
        out = dev.push(ops)
        assert [r["status"] for r in out["results"]].count("rejected") == 1
        assert out["results"][3]["status"] == "rejected"
        assert planned(server, "thread") == thread + 2


def test_a_single_edit_onto_a_long_note_is_planned_in_a_thread(server: ServerProcess) -> None:
    with Api(server.base_url) as api:
        dev = api.user()
        note = new_id()
        dev.push([dev.set("note", note, title="Long")])
        ops, state = typing(dev, note, None, ["lorem ipsum " * (LARGE_BYTES // 12 + 1)])
        dev.push(ops)  # its update alone is past LARGE_BYTES
        thread = planned(server, "thread")
        ops, _ = typing(dev, note, state, ["!"])
        dev.push(ops)  # one op, but onto a stored document past LARGE_BYTES
        assert planned(server, "thread") == thread + 1
        assert body(dev, note).endswith("ipsum !")


def test_requests_are_answered_while_a_large_push_is_planned(server: ServerProcess) -> None:
    """Ordering, not time: a /metrics answer that reports a batch being planned in a thread
    was made by the event loop during that planning, before the push was answered. Planned
    on the loop, no other request could be answered in between."""
    with Api(server.base_url) as api:
        dev = api.user()
        note = new_id()
        dev.push([dev.set("note", note, title="Chapter")])
        ops, state = typing(dev, note, None, ["lorem ipsum dolor " * 20_000])  # 360 kB
        dev.push(ops)
    flight = re.compile(r"^syncd_batches_planning_off_loop (\S+)$", re.M)

    async def attempt(c: httpx.AsyncClient, ops: list[dict[str, Any]]) -> tuple[bool, int]:
        push = asyncio.ensure_future(
            c.post("/v1/sync/push", json={"ops": ops}, headers=dev.headers))
        seen = False
        health = 0
        while not push.done():
            r = await c.get("/health")
            assert r.status_code == 200
            health += 1
            m = flight.search((await c.get("/metrics")).text)
            if m and float(m.group(1)) >= 1 and not push.done():
                seen = True
        r = await push
        assert r.status_code == 200, r.text
        assert {x["status"] for x in r.json()["results"]} == {"applied"}
        return seen, health

    async def main() -> bool:
        nonlocal state
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as c:
            for _ in range(5):  # the window is the planning of 1000 ops onto 360 kB
                ops, state = typing(dev, note, state, [f" w{i}" for i in range(1000)])
                seen, health = await attempt(c, ops)
                assert health >= 1
                if seen:
                    return True
        return False

    thread = planned(server, "thread")
    assert asyncio.run(main()), "no request was answered while a large push was planned"
    assert planned(server, "thread") > thread
