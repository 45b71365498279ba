"""History and time travel agree with the log: `at?seq=N` is the log's first N events
replayed (checked against an independent device-side replica and against `rebuild`),
history lists every change once, and revert writes new ops that restore a past state."""

from __future__ import annotations

import base64
import random
import time
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Doc, Text

from syncd.history import _diff
from syncd.rebuild import replay
from syncd.textdiff import changed_span
from tests.helpers import Api, Device, new_id, text_update
from tests.test_rest_notes import call, create

NOTE_FIELDS = ("title", "tags", "pinned", "favorite", "project_id", "deleted")
WORDS = ["alpha", "beta", "gamma", "delta", "ünïcode", "😀", "x"]


def replica(events: list[dict[str, Any]]) -> dict[str, Any]:
    """What a device holds after applying these events: LWW by hlc per field, CRDT text."""
    fields: dict[str, Any] = {"title": "", "tags": [], "pinned": False, "favorite": False,
                              "project_id": None, "deleted": False}
    clocks: dict[str, str] = {}
    doc: Doc[Any] = Doc()
    text = doc.get("body", type=Text)
    for e in events:
        if e["kind"] == "text":
            doc.apply_update(base64.b64decode(e["update"]))
            continue
        changes = e["fields"] if e["kind"] == "set" else {"deleted": e["kind"] == "delete"}
        for name, value in changes.items():
            if e["hlc"] > clocks.get(name, ""):
                fields[name], clocks[name] = value, e["hlc"]
    return {**fields, "body": str(text)}


def rebuilt(db: psycopg.Connection[Any], user: str, note: str, upto: int) -> dict[str, Any]:
    """`rebuild`'s replay of the user's log up to seq `upto`, for one note."""
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    rows = cur.execute(
        """SELECT e.op_id, e.entity, e.entity_id, e.kind, e.fields, e.hlc, e.author_id, e.at,
                  p.data FROM events e LEFT JOIN payloads p ON p.op_id = e.op_id
           WHERE e.user_id = %s AND e.entity_id = %s AND e.seq <= %s ORDER BY e.op_id""",
        (user, note, upto)).fetchall()
    ent = replay(iter(rows)).entities[rows[0]["entity_id"]]
    return {**{f: ent.fields[f] for f in NOTE_FIELDS}, "body": ent.body}


def state(view: dict[str, Any]) -> dict[str, Any]:
    return {k: view[k] for k in (*NOTE_FIELDS, "body")}


def random_edits(rng: random.Random, web: Device, tablet: Device, note: str, n: int) -> None:
    for _ in range(n):
        choice = rng.randrange(6)
        if choice == 0:
            call(web, "PATCH", f"/v1/notes/{note}", json={
                "title": rng.choice(WORDS), "pinned": rng.random() < 0.5})
        elif choice == 1:
            body = call(web, "GET", f"/v1/notes/{note}").json()["body"]
            words = body.split()
            if words and rng.random() < 0.4:
                words.pop(rng.randrange(len(words)))
            words.insert(rng.randrange(len(words) + 1), rng.choice(WORDS))
            call(web, "PATCH", f"/v1/notes/{note}", json={"body": " ".join(words)})
        elif choice == 2:  # a device write with a clock from the past may lose the LWW
            skew = rng.choice([0, 0, 60_000])
            hlc = tablet.hlc(int(time.time() * 1000) - skew)
            tablet.push([tablet.set("note", note, hlc, tags=rng.sample(WORDS, 2),
                                    favorite=rng.random() < 0.5)])
        elif choice == 3:
            view = call(tablet, "GET", f"/v1/notes/{note}").json()
            word = rng.choice(WORDS) + " "
            update, _ = text_update(base64.b64decode(view["body_state"]),
                                    lambda t, w=word: t.insert(0, w))
            tablet.push([tablet.op("note", note, "text", field="body",
                                   update=base64.b64encode(update).decode())])
        elif choice == 4:
            call(web, "DELETE", f"/v1/notes/{note}")
        else:
            call(tablet, "POST", f"/v1/notes/{note}/restore")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_at_seq_replays_the_log(api: Api, db: psycopg.Connection[Any], seed: int) -> None:
    rng = random.Random(seed)
    print(f"seed {seed}")
    web = api.user("web")
    tablet = web.login_again("tablet")
    note = create(web, title="start", body="first words")["id"]
    random_edits(rng, web, tablet, note, 20)

    events = [e for e in web.pull() if e["id"] == note]
    for i, e in enumerate(events):
        at = call(web, "GET", f"/v1/notes/{note}/at", params={"seq": e["seq"]}).json()
        expected = replica(events[:i + 1])
        assert state(at) == expected, f"seed {seed}, seq {e['seq']}"
        assert state(at) == rebuilt(db, web.user_id, note, e["seq"])
        assert at["seq"] == e["seq"]
    current = call(web, "GET", f"/v1/notes/{note}").json()
    assert state(current) == replica(events)
    # ?at= a timestamp is the state after every event stamped at or before it.
    middle = events[len(events) // 2]
    at = call(web, "GET", f"/v1/notes/{note}/at", params={"at": middle["at"]}).json()
    assert state(at) == replica([e for e in events if e["at"] <= middle["at"]])
    # Before the note existed there is nothing to show.
    call(web, "GET", f"/v1/notes/{note}/at", 404, params={"seq": events[0]["seq"] - 1})


def test_history_pages_every_change_once(api: Api) -> None:
    web = api.user("web")
    tablet = web.login_again("tablet")
    note = create(web, title="draft", body="one two")["id"]
    call(web, "PATCH", f"/v1/notes/{note}", json={"body": "one three two", "tags": ["t"]})
    tablet.push([tablet.set("note", note, title="final")])
    call(web, "DELETE", f"/v1/notes/{note}")

    entries, cursor = [], 0
    while True:
        page = call(web, "GET", f"/v1/notes/{note}/history",
                    params={"cursor": cursor, "limit": 2}).json()
        entries += page["events"]
        cursor = page["cursor"]
        if not page["has_more"]:
            break
    events = [e for e in web.pull() if e["id"] == note]
    assert [(h["seq"], h["kind"]) for h in entries] == [(e["seq"], e["kind"]) for e in events]
    assert [h["device_id"] for h in entries] == [web.device_id] * 4 + [
        tablet.device_id, web.device_id]
    assert {h["user_id"] for h in entries} == {web.user_id}
    assert entries[1]["text"]["inserted"] == "one two"
    # The minimal diff of "one two" → "one three two" keeps the common "one t…wo".
    assert entries[3]["text"] == {"at": 5, "inserted": "hree t", "deleted": "",
                                  "inserted_chars": 6, "deleted_chars": 0}
    assert entries[4]["fields"] == {"title": "final"}


def test_revert_restores_a_past_state_through_new_ops(api: Api) -> None:
    web = api.user("web")
    tablet = web.login_again("tablet")
    note = create(web, title="v1", tags=["a"], body="the original text")["id"]
    then = web.pull()[-1]["seq"]
    call(web, "PATCH", f"/v1/notes/{note}", json={"title": "v2", "tags": ["b"], "pinned": True,
                                                 "body": "the rewritten text, longer"})
    call(web, "DELETE", f"/v1/notes/{note}")
    before = [e["seq"] for e in web.pull() if e["id"] == note]
    # A device edits the current text offline; the revert must not wipe it when it lands.
    view = call(tablet, "GET", f"/v1/notes/{note}").json()
    update, _ = text_update(base64.b64decode(view["body_state"]), lambda t: t.insert(0, ">> "))

    r = call(web, "POST", f"/v1/notes/{note}/revert", json={"seq": then})
    past = call(web, "GET", f"/v1/notes/{note}/at", params={"seq": then}).json()
    assert state(r.json()) == state(past)
    assert (r.json()["title"], r.json()["deleted"], r.json()["body"]) == (
        "v1", False, "the original text")
    events = [e for e in web.pull() if e["id"] == note]
    assert [e["seq"] for e in events][:len(before)] == before  # history keeps both
    assert {e["kind"] for e in events[len(before):]} == {"restore", "set", "text"}

    tablet.push([tablet.op("note", note, "text", field="body",
                           update=base64.b64encode(update).decode())])
    assert call(web, "GET", f"/v1/notes/{note}").json()["body"] == ">> the original text"
    # Stale If-Match and unknown points are refused; reverting to now changes nothing.
    call(web, "POST", f"/v1/notes/{note}/revert", 412, json={"seq": then},
         headers={"If-Match": r.headers["etag"]})
    call(web, "POST", f"/v1/notes/{note}/revert", 400, json={})
    call(web, "POST", f"/v1/notes/{note}/revert", 400, json={"seq": 1, "at": "2020-01-01"})
    head = web.pull()[-1]["seq"]
    call(web, "POST", f"/v1/notes/{note}/revert", json={"seq": head})
    assert web.pull(head) == []


def test_project_history_at_and_revert(api: Api) -> None:
    owner = api.user()
    pid = call(owner, "POST", "/v1/projects", 201,
               json={"title": "Novel", "word_goal": 1000}).json()["id"]
    then = owner.pull()[-1]["seq"]
    call(owner, "PATCH", f"/v1/projects/{pid}", json={"title": "Saga", "status": "completed"})
    at = call(owner, "GET", f"/v1/projects/{pid}/at", params={"seq": then}).json()
    assert (at["title"], at["status"], at["word_goal"]) == ("Novel", "active", 1000)
    history = call(owner, "GET", f"/v1/projects/{pid}/history").json()["events"]
    assert [h["fields"] for h in history] == [
        {"title": "Novel", "word_goal": 1000}, {"title": "Saga", "status": "completed"}]
    r = call(owner, "POST", f"/v1/projects/{pid}/revert", json={"seq": then}).json()
    assert (r["title"], r["status"]) == ("Novel", "active")


def test_a_members_history_starts_where_they_were_shown_the_note(api: Api) -> None:
    owner, member = api.user("owner"), api.user("member")
    pid = call(owner, "POST", "/v1/projects", 201, json={"title": "Shared"}).json()["id"]
    note = create(owner, title="before sharing", project_id=pid, body="old words")["id"]
    call(owner, "POST", f"/v1/projects/{pid}/members", 201,
         json={"email": member.email, "role": "editor"})
    call(member, "PATCH", f"/v1/notes/{note}", json={"title": "after"})
    kinds = [h["kind"] for h in call(member, "GET", f"/v1/notes/{note}/history").json()["events"]]
    assert kinds == ["put", "set"]
    events = [e for e in member.pull() if e["id"] == note]
    at = call(member, "GET", f"/v1/notes/{note}/at", params={"seq": events[0]["seq"]}).json()
    assert (at["title"], at["body"]) == ("before sharing", "old words")
    call(member, "GET", f"/v1/notes/{note}/at", 404, params={"seq": events[0]["seq"] - 1})
    # Someone with no access sees nothing of it.
    stranger = api.user()
    for path in ("history", "at?seq=100"):
        call(stranger, "GET", f"/v1/notes/{note}/{path}", 404)
    call(stranger, "POST", f"/v1/notes/{note}/revert", 404, json={"seq": 1})
    call(stranger, "GET", f"/v1/notes/{new_id()}/history", 404)


@given(st.text("ab ", max_size=12), st.text("ab ", max_size=12))
def test_a_text_change_is_the_span_between_common_prefix_and_suffix(old: str, new: str) -> None:
    """changed_span (history diffs and body PATCHes) bisects slice comparisons: the span
    must still be exact and the shortest."""
    p, s = changed_span(old, new)
    inserted, deleted = new[p:len(new) - s], old[p:len(old) - s]
    assert new[:p] == old[:p] and new[len(new) - s:] == old[len(old) - s:]
    assert p + s <= min(len(old), len(new))
    if inserted and deleted:  # neither the prefix nor the suffix could grow
        assert inserted[0] != deleted[0] and inserted[-1] != deleted[-1]
    d = _diff(old, new)
    assert (d["at"], d["inserted"], d["deleted"]) == (p, inserted, deleted)
