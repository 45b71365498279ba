"""Merge: LWW by HLC on every path, text edits from two devices both survive, and a delete
racing an edit leaves a restorable note."""

from __future__ import annotations

import base64
import time

from tests.helpers import Api, Device, new_id, text_update


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def test_concurrent_field_edits_resolve_by_hlc_whatever_the_push_order(api: Api) -> None:
    results = []
    for reverse in (False, True):
        laptop = api.user("laptop")
        phone = laptop.login_again("phone")
        nid = new_id()
        laptop.push([laptop.set("note", nid, title="start", tags=["a"])])
        now = int(time.time() * 1000)
        # Offline edits: the phone wrote the title later, the laptop wrote the tags later.
        from_laptop = [laptop.set("note", nid, hlc=laptop.hlc(now + 10), title="laptop"),
                       laptop.set("note", nid, hlc=laptop.hlc(now + 30), tags=["laptop"])]
        from_phone = [phone.set("note", nid, hlc=phone.hlc(now + 20), title="phone"),
                      phone.set("note", nid, hlc=phone.hlc(now + 5), tags=["phone"])]
        order: list[tuple[Device, list[dict[str, object]]]] = [
            (laptop, from_laptop), (phone, from_phone)]
        for d, ops in reversed(order) if reverse else order:
            d.push(ops)
        note = laptop.snapshot()["notes"][0]
        results.append((note["title"], note["tags"]))
    assert results == [("phone", ["laptop"])] * 2


def test_equal_wall_and_counter_break_ties_by_device_id(api: Api) -> None:
    a = api.user("a")
    b = a.login_again("b")
    nid = new_id()
    a.push([a.set("note", nid, title="seed")])
    wall = int(time.time() * 1000) + 50
    a.push([a.set("note", nid, hlc=f"{wall:013d}.000007.{a.device_id}", title="A")])
    b.push([b.set("note", nid, hlc=f"{wall:013d}.000007.{b.device_id}", title="B")])
    winner = "A" if a.device_id > b.device_id else "B"
    assert a.snapshot()["notes"][0]["title"] == winner


def test_concurrent_text_edits_on_two_devices_both_survive(api: Api) -> None:
    laptop = api.user("laptop")
    phone = laptop.login_again("phone")
    nid = new_id()
    seed, state = text_update(None, lambda t: t.insert(0, "The quick fox."))
    laptop.push([laptop.set("note", nid, title="t"),
                 laptop.op("note", nid, "text", field="body", update=b64(seed))])
    # Both start from the same state, offline.
    mine, _ = text_update(state, lambda t: t.insert(4, "very "))
    theirs, _ = text_update(state, lambda t: t.insert(len(str(t)) - 1, " jumps"))
    phone.push([phone.op("note", nid, "text", field="body", update=b64(theirs))])
    laptop.push([laptop.op("note", nid, "text", field="body", update=b64(mine))])
    body = laptop.snapshot()["notes"][0]["body"]
    assert body == "The very quick fox jumps."
    # Re-delivering an update changes nothing (updates are idempotent).
    phone.push([phone.op("note", nid, "text", field="body", update=b64(theirs))])
    assert laptop.snapshot()["notes"][0]["body"] == body


def test_delete_racing_an_edit_leaves_a_restorable_note(api: Api) -> None:
    laptop = api.user("laptop")
    phone = laptop.login_again("phone")
    nid = new_id()
    seed, state = text_update(None, lambda t: t.insert(0, "draft"))
    laptop.push([laptop.set("note", nid, title="t"),
                 laptop.op("note", nid, "text", field="body", update=b64(seed))])
    edit, _ = text_update(state, lambda t: t.insert(5, " with more words"))
    laptop.push([laptop.op("note", nid, "delete")])
    phone.push([phone.op("note", nid, "text", field="body", update=b64(edit)),
                phone.set("note", nid, title="edited while deleted")])
    note = laptop.snapshot()["notes"][0]
    assert note["deleted"] is True
    assert note["body"] == "draft with more words"
    assert note["title"] == "edited while deleted"
    laptop.push([laptop.op("note", nid, "restore")])
    note = laptop.snapshot()["notes"][0]
    assert note["deleted"] is False and note["body"] == "draft with more words"


def test_events_carry_what_a_device_needs_to_replay(api: Api) -> None:
    d = api.user()
    nid = new_id()
    d.push([d.set("note", nid, title="x"), d.op("note", nid, "delete")])
    evs = d.pull()
    assert [(e["kind"], e["id"], e["client_seq"]) for e in evs] == [("set", nid, 1),
                                                                   ("delete", nid, 2)]
    assert all(e["device_id"] == d.device_id and e["user_id"] == d.user_id for e in evs)


def test_field_writes_leave_bodies_alone(api: Api) -> None:
    """A batch of field writes loads notes without their documents: their text, state and
    word counts must come through it untouched, beside a note whose text the batch edits."""
    d = api.user()
    pid, a, b = new_id(), new_id(), new_id()
    upd_a, _ = text_update(None, lambda t: t.insert(0, "alpha beta gamma"))
    upd_b, state_b = text_update(None, lambda t: t.insert(0, "one two"))
    d.push([d.set("project", pid, title="P", word_goal=100),
            d.set("note", a, project_id=pid), d.set("note", b, project_id=pid),
            d.op("note", a, "text", field="body", update=b64(upd_a)),
            d.op("note", b, "text", field="body", update=b64(upd_b))])
    before = {n["id"]: n for n in d.snapshot()["notes"]}
    more_b, _ = text_update(state_b, lambda t: t.insert(len(str(t)), " three"))
    d.push([d.set("note", a, title="renamed", pinned=True),
            d.op("note", b, "text", field="body", update=b64(more_b))])
    snap = d.snapshot()
    after = {n["id"]: n for n in snap["notes"]}
    assert after[a]["title"] == "renamed"
    assert (after[a]["body"], after[a]["body_state"], after[a]["word_count"]) == (
        before[a]["body"], before[a]["body_state"], 3)
    assert after[b]["body"] == "one two three"
    assert snap["projects"][0]["word_count"] == 6
