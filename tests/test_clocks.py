"""Clocks under skew, against a real server: a device's canonical clocks keep the order of
its own ops (within a batch, across batches, through the sync socket), and a server-made
write is stamped above the clocks of the fields it writes, after a restart and on another
node, so it is never answered 200 and lost."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from syncd.hlc import format_hlc
from syncd.limits import MAX_CLOCK_SKEW_MS
from tests.fix_server import ServerProcess
from tests.helpers import Api, Device, new_id
from tests.test_bus import two_nodes
from tests.ws_client import hello, open_socket, recv_type, send

MINUTE = 60_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def at(d: Device, wall: int, counter: int = 0) -> str:
    return format_hlc(wall, counter, d.device_id)


def title_of(d: Device, nid: str) -> tuple[Any, str]:
    [note] = [n for n in d.snapshot()["notes"] if n["id"] == nid]
    return note["title"], note["clocks"]["title"]


def test_a_batch_far_ahead_keeps_its_order(api: Api) -> None:
    """The divergence: two ops far ahead whose clocks differ only in wall time used to be
    canonicalised to one clock, and the tie kept "first" on the server, "second" on the
    device."""
    d = api.user()
    nid = new_id()
    ahead = now_ms() + 10 * MINUTE
    sent = [at(d, ahead), at(d, ahead + 1)]
    r = d.push([d.set("note", nid, hlc=sent[0], title="first"),
                d.set("note", nid, hlc=sent[1], title="second")])
    assert [x["status"] for x in r["results"]] == ["applied", "applied"]
    c1, c2 = (x["hlc"] for x in r["results"])
    assert c1 < c2 < sent[0] and c1.endswith(d.device_id) and c2.endswith(d.device_id)
    assert title_of(d, nid) == ("second", c2)
    assert [e["hlc"] for e in d.pull() if e["id"] == nid] == [c1, c2]

    # The next batch, far ahead again, stays above this one.
    r = d.push([d.set("note", nid, hlc=at(d, ahead), title="third")])
    c3 = r["results"][0]["hlc"]
    assert c3 > c2
    assert title_of(d, nid) == ("third", c3)


def test_a_clock_just_inside_the_window_does_not_outrank_a_later_reset_one(api: Api) -> None:
    d = api.user()
    nid = new_id()
    inside = at(d, now_ms() + MAX_CLOCK_SKEW_MS - MINUTE)
    r = d.push([d.set("note", nid, hlc=inside, title="inside")])
    assert "hlc" not in r["results"][0] or r["results"][0]["hlc"] is None  # kept as sent
    # A later op of the same device, further ahead: reset to the server's clock, and still
    # above the op before it.
    r = d.push([d.set("note", nid, hlc=at(d, now_ms() + 2 * MAX_CLOCK_SKEW_MS), title="later")])
    canonical = r["results"][0]["hlc"]
    assert canonical > inside
    assert title_of(d, nid) == ("later", canonical)


def test_a_device_clock_going_back_is_raised_above_its_last_one(api: Api) -> None:
    d = api.user()
    nid = new_id()
    first = at(d, now_ms())
    d.push([d.set("note", nid, hlc=first, title="one")])
    r = d.push([d.set("note", nid, hlc=at(d, now_ms() - 60 * MINUTE), title="two")])
    assert r["results"][0]["hlc"] > first
    assert title_of(d, nid) == ("two", r["results"][0]["hlc"])


def test_socket_acks_carry_the_canonical_clocks(server: ServerProcess, api: Api) -> None:
    d = api.user()
    nid = new_id()
    ahead = now_ms() + 10 * MINUTE
    with open_socket(server.ws_url, d) as ws:
        hello(ws)
        send(ws, {"type": "push", "ops": [
            d.set("note", nid, hlc=at(d, ahead), title="first"),
            d.set("note", nid, hlc=at(d, ahead + 1), title="second")]})
        ack = recv_type(ws, "ack")
    c1, c2 = (x["hlc"] for x in ack["results"])
    assert c1 < c2 < at(d, ahead)
    assert title_of(d, nid) == ("second", c2)


def _patch_title(d: Device, nid: str, title: str) -> None:
    r = d.api.patch(f"/v1/notes/{nid}", json={"title": title}, headers=d.headers)
    assert r.status_code == 200, r.text
    assert r.json()["title"] == title
    r = d.get(f"/v1/notes/{nid}")
    assert r.status_code == 200 and r.json()["title"] == title, r.text


def test_a_rest_write_after_a_restart_beats_a_clock_4_minutes_ahead(pg_url: str,
                                                                      tmp_root: Path) -> None:
    node = ServerProcess(pg_url, tmp_root / f"restart-{uuid.uuid4().hex[:8]}")
    node.start()
    try:
        with Api(node.base_url) as api:
            d = api.user()
            nid = new_id()
            ahead = at(d, now_ms() + 4 * MINUTE)
            r = d.push([d.set("note", nid, hlc=ahead, title="from the future")])
            assert r["results"][0]["status"] == "applied"
            node.stop()
            node.start()
            _patch_title(d, nid, "from the web")
            title, clock = title_of(d, nid)
            assert (title, clock > ahead) == ("from the web", True)
    finally:
        node.stop()


def test_a_rest_write_on_another_node_beats_a_clock_4_minutes_ahead(
        pg_url: str, tmp_root: Path, redis_url: str) -> None:
    node_a, node_b = two_nodes(pg_url, tmp_root, redis_url)
    try:
        with Api(node_a.base_url) as api_a, Api(node_b.base_url) as api_b:
            phone = api_a.user("phone")
            web = api_b.login(phone.email, "web")
            nid = new_id()
            ahead = at(phone, now_ms() + 4 * MINUTE)
            phone.push([phone.set("note", nid, hlc=ahead, title="from the future",
                                  pinned=True)])
            _patch_title(web, nid, "from the web")
            r = web.api.patch(f"/v1/notes/{nid}", json={"pinned": False}, headers=web.headers)
            assert r.status_code == 200 and r.json()["pinned"] is False, r.text
            [note] = phone.snapshot()["notes"]
            assert (note["title"], note["pinned"]) == ("from the web", False)
            assert note["clocks"]["title"] > ahead and note["clocks"]["pinned"] > ahead
    finally:
        node_a.stop()
        node_b.stop()
