"""Conflicts made visible: a write that meets a value its device had not seen is recorded,
listed, announced with a `conflict` event, and settled through a new op."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from tests.helpers import Api, Device, new_id


def cursor_of(d: Device) -> int:
    events = d.pull()
    return int(events[-1]["seq"]) if events else 0


def set_title(d: Device, nid: str, title: str, base: int) -> dict[str, Any]:
    return d.op("note", nid, "set", fields={"title": title}, base=base)


def open_conflicts(d: Device) -> list[dict[str, Any]]:
    r = d.get("/v1/conflicts")
    assert r.status_code == 200, r.text
    return list(r.json()["conflicts"])


def two_offline_titles(api: Api) -> tuple[Device, Device, str]:
    laptop = api.user("laptop")
    phone = laptop.login_again("phone")
    nid = new_id()
    laptop.push([laptop.set("note", nid, title="start")])
    base = cursor_of(phone)  # both devices have seen "start"
    laptop.push([set_title(laptop, nid, "from laptop", base)])
    phone.push([set_title(phone, nid, "from phone", base)])  # had not seen the laptop's
    return laptop, phone, nid


def test_two_offline_devices_writing_one_title_make_exactly_one_conflict(api: Api) -> None:
    laptop, phone, nid = two_offline_titles(api)
    conflicts = open_conflicts(laptop)
    assert len(conflicts) == 1
    c = conflicts[0]
    assert (c["entity"], c["entity_id"], c["field"]) == ("note", nid, "title")
    assert {c["mine"]["value"], c["theirs"]["value"]} == {"from laptop", "from phone"}
    assert c["mine"]["device_id"] == phone.device_id
    assert c["theirs"]["device_id"] == laptop.device_id
    current = laptop.snapshot()["notes"][0]["title"]
    assert c[c["winner"]]["value"] == current
    # The user's devices hear of it through their log.
    announced = [e for e in laptop.pull() if e["kind"] == "conflict"]
    assert [e["fields"]["id"] for e in announced] == [c["id"]]


def test_resolving_converges_every_device(api: Api) -> None:
    laptop, phone, _nid = two_offline_titles(api)
    [c] = open_conflicts(phone)
    loser = c["theirs"] if c["winner"] == "mine" else c["mine"]
    r = api.post(f"/v1/conflicts/{c['id']}/resolve", json={"choose": "theirs"
                 if loser is c["theirs"] else "mine"}, headers=phone.headers)
    assert r.status_code == 200, r.text
    assert r.json()["resolved_at"] is not None
    for d in (laptop, phone):
        assert d.snapshot()["notes"][0]["title"] == loser["value"]
        last_set = [e for e in d.pull() if e["kind"] == "set"][-1]
        assert last_set["fields"] == {"title": loser["value"]}
    assert open_conflicts(laptop) == []
    again = api.post(f"/v1/conflicts/{c['id']}/resolve", json={"choose": "mine"},
                     headers=phone.headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_resolved"


def test_resolving_with_a_value_and_bad_values(api: Api) -> None:
    laptop, _, _ = two_offline_titles(api)
    [c] = open_conflicts(laptop)
    bad = api.post(f"/v1/conflicts/{c['id']}/resolve", json={"choose": 42},
                   headers=laptop.headers)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation"
    assert len(open_conflicts(laptop)) == 1  # a refused resolution changes nothing
    ok = api.post(f"/v1/conflicts/{c['id']}/resolve", json={"choose": "both, merged"},
                  headers=laptop.headers)
    assert ok.status_code == 200
    assert laptop.snapshot()["notes"][0]["title"] == "both, merged"


def test_no_conflict_when_the_device_had_seen_the_value(api: Api) -> None:
    laptop = api.user("laptop")
    phone = laptop.login_again("phone")
    nid = new_id()
    laptop.push([laptop.set("note", nid, title="start")])
    laptop.push([set_title(laptop, nid, "laptop edit", cursor_of(laptop))])
    phone.push([set_title(phone, nid, "phone, after seeing it", cursor_of(phone))])
    # The same device rewriting its own value is no conflict either, whatever its base.
    phone.push([set_title(phone, nid, "phone again", 0)])
    # Writing the value that is already there loses nobody's typing.
    laptop.push([set_title(laptop, nid, "phone again", 0)])
    assert open_conflicts(laptop) == []


def test_one_batch_finds_exactly_the_unseen_writes_among_many_notes(api: Api) -> None:
    """A long offline batch: ops made before the other device's writes conflict, ops made
    after pulling them (base at the log's head) do not, and a second write of a field in
    the same batch is the device's own, not another conflict."""
    laptop = api.user("laptop")
    phone = laptop.login_again("phone")
    ids = [new_id() for _ in range(40)]
    laptop.push([laptop.set("note", i, title=f"start {k}") for k, i in enumerate(ids)])
    early = cursor_of(phone)
    laptop.push([set_title(laptop, i, f"laptop {k}", early) for k, i in enumerate(ids)])
    head = cursor_of(phone)
    stale = set(ids[::3])
    ops = [set_title(phone, i, f"phone {k}", early if i in stale else head)
           for k, i in enumerate(ids)]
    ops += [set_title(phone, ids[0], "phone, again", early)]
    phone.push(ops)
    conflicts = open_conflicts(laptop)
    assert sorted(c["entity_id"] for c in conflicts) == sorted(stale)
    assert {c["theirs"]["device_id"] for c in conflicts} == {laptop.device_id}
    assert all(c["theirs"]["value"] == f"laptop {ids.index(c['entity_id'])}"
               for c in conflicts)
    # One stale op far behind the head (its writer looked up by its note, not by reading
    # the log since its base).
    seen = cursor_of(phone)
    laptop.push([set_title(laptop, i, f"laptop again {k}", seen) for k, i in enumerate(ids)])
    cursor_of(phone)
    phone.push([set_title(phone, ids[1], "phone, late", seen)])
    late = [c for c in open_conflicts(laptop) if c["mine"]["value"] == "phone, late"]
    assert [(c["entity_id"], c["theirs"]["value"]) for c in late] == [(ids[1], "laptop again 1")]


def test_conflicts_are_private_and_rebuild_still_agrees(api: Api, pg_url: str) -> None:
    laptop, _, _ = two_offline_titles(api)
    [c] = open_conflicts(laptop)
    exported = laptop.get("/v1/export").json()
    assert [x["id"] for x in exported["conflicts"]] == [c["id"]]
    stranger = api.user()
    assert open_conflicts(stranger) == []
    r = api.post(f"/v1/conflicts/{c['id']}/resolve", json={"choose": "mine"},
                 headers=stranger.headers)
    assert r.status_code == 404
    env = {**os.environ, "DATABASE_URL": pg_url}
    out = subprocess.run([sys.executable, "-m", "syncd", "rebuild", "--verify"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_delete_racing_an_unseen_edit_is_a_conflict_on_deleted(api: Api) -> None:
    laptop = api.user("laptop")
    phone = laptop.login_again("phone")
    nid = new_id()
    laptop.push([laptop.set("note", nid, title="t")])
    base = cursor_of(phone)
    laptop.push([laptop.op("note", nid, "delete", base=base)])
    phone.push([phone.op("note", nid, "restore", base=base)])
    [c] = open_conflicts(laptop)
    assert c["field"] == "deleted"
    assert {c["mine"]["value"], c["theirs"]["value"]} == {True, False}
    r = api.post(f"/v1/conflicts/{c['id']}/resolve", json={"choose": False},
                 headers=laptop.headers)
    assert r.status_code == 200
    assert laptop.snapshot()["notes"][0]["deleted"] is False
