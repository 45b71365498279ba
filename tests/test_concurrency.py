"""Several devices of one user pushing at once: seq 1..N with no gap or duplicate, and a
puller running during the pushes never skips an event."""

from __future__ import annotations

import threading
from typing import Any

from tests.helpers import Api, Device, new_id


def test_parallel_pushes_give_gapless_seqs_and_a_puller_never_skips(api: Api) -> None:
    first = api.user("d0")
    devices = [first] + [first.login_again(f"d{i}") for i in range(1, 4)]
    shared_note = new_id()
    first.push([first.set("note", shared_note, title="contended")])
    batches, per_batch = 15, 7
    stop = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def pusher(d: Device) -> None:
        try:
            with Api(api.base_url.__str__()) as own:
                d.api = own
                for b in range(batches):
                    ops = [d.set("note", shared_note if i == 0 else new_id(), title=f"{b}.{i}")
                           for i in range(per_batch)]
                    r = d.push(ops)
                    assert all(x["status"] == "applied" for x in r["results"])
        except BaseException as e:  # surfaced below
            errors.append(e)

    def puller() -> None:
        cursor = 0
        try:
            with Api(api.base_url.__str__()) as own:
                while True:
                    done = stop.is_set()
                    page = own.get("/v1/sync/pull", params={"cursor": cursor, "limit": 50},
                                   headers=first.headers).json()
                    for ev in page["events"]:
                        seen.append(ev["seq"])
                    cursor = page["cursor"]
                    if done and not page["has_more"]:
                        return
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=pusher, args=(d,)) for d in devices]
    reader = threading.Thread(target=puller)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    reader.join()
    assert not errors, errors
    for d in devices:
        d.api = api
    total = 1 + len(devices) * batches * per_batch
    assert seen == list(range(1, total + 1))
    events: list[dict[str, Any]] = first.pull()
    assert [e["seq"] for e in events] == list(range(1, total + 1))
    # Each device's ops appear in its own client_seq order.
    for d in devices:
        mine = [e["client_seq"] for e in events if e["device_id"] == d.device_id]
        assert mine == sorted(mine) and len(mine) == len(set(mine))
