"""Sharing and isolation: members see a project through their own log, viewers cannot
write, removal revokes, and nothing unshared ever reaches another user."""

from __future__ import annotations

import base64
import threading
from typing import Any

import psycopg
from pycrdt import Doc, Text

from tests.helpers import Api, Device, new_id, text_update


def shared_project(api: Api, role: str = "editor") -> tuple[Device, Device, str, str]:
    owner, member = api.user("owner"), api.user("member")
    pid, nid = new_id(), new_id()
    upd, _ = text_update(None, lambda t: t.insert(0, "shared words here"))
    owner.push([owner.set("project", pid, title="Book", word_goal=100),
                owner.set("note", nid, title="Chapter 1", project_id=pid),
                owner.op("note", nid, "text", field="body",
                         update=base64.b64encode(upd).decode())])
    r = api.post(f"/v1/projects/{pid}/members", json={"email": member.email, "role": role},
                 headers=owner.headers)
    assert r.status_code == 201, r.text
    assert r.json() == {"user_id": member.user_id, "role": role}
    return owner, member, pid, nid


def test_adding_a_member_backfills_their_log(api: Api) -> None:
    _owner, member, pid, nid = shared_project(api)
    events = member.pull()
    puts = {(e["entity"], e["id"]): e for e in events if e["kind"] == "put"}
    assert set(puts) == {("project", pid), ("note", nid)}
    assert puts[("note", nid)]["fields"]["title"] == "Chapter 1"
    assert "title" in puts[("note", nid)]["clocks"]
    assert puts[("note", nid)]["body_state"]
    assert events[-1]["kind"] == "member"
    snap = member.snapshot()
    assert [n["body"] for n in snap["notes"]] == ["shared words here"]
    assert {m["role"] for m in snap["projects"][0]["members"]} == {"owner", "editor"}
    assert snap["cursor"] == events[-1]["seq"]


def test_member_edits_reach_the_owner_and_viewers_cannot_write(api: Api) -> None:
    owner, editor, pid, nid = shared_project(api, "editor")
    viewer = api.user("viewer")
    api.post(f"/v1/projects/{pid}/members", json={"email": viewer.email, "role": "viewer"},
             headers=owner.headers)
    r = editor.push([editor.set("note", nid, title="Edited by editor")])
    assert r["results"][0]["status"] == "applied"
    r = viewer.push([viewer.set("note", nid, title="viewer"),
                     viewer.op("note", nid, "delete"),
                     viewer.set("project", pid, title="viewer"),
                     viewer.set("note", new_id(), title="new in project", project_id=pid)])
    assert [(x["status"], x.get("code")) for x in r["results"]] == [
        ("rejected", "forbidden")] * 4
    assert owner.snapshot()["notes"][0]["title"] == "Edited by editor"
    assert any(e["kind"] == "set" and e["fields"] == {"title": "Edited by editor"}
               for e in viewer.pull())
    # Only the owner manages members.
    resp = api.post(f"/v1/projects/{pid}/members",
                    json={"email": viewer.email, "role": "editor"}, headers=editor.headers)
    assert resp.status_code == 403


def test_removing_a_member_revokes_and_stops_updates(api: Api) -> None:
    owner, member, pid, nid = shared_project(api)
    r = api.delete(f"/v1/projects/{pid}/members/{member.user_id}", headers=owner.headers)
    assert r.status_code == 204
    events = member.pull()
    revoked = {(e["entity"], e["id"]) for e in events if e["kind"] == "revoke"}
    assert revoked == {("project", pid), ("note", nid)}
    cursor = events[-1]["seq"]
    owner.push([owner.set("note", nid, title="private again")])
    assert member.pull(cursor) == []
    assert member.snapshot()["notes"] == []
    assert member.push([member.set("note", nid, title="x")])["results"][0]["code"] == "forbidden"


def test_moving_a_note_changes_who_sees_it(api: Api) -> None:
    owner, member, pid, _nid = shared_project(api)
    private = new_id()
    upd, _ = text_update(None, lambda t: t.insert(0, "the secret text"))
    owner.push([owner.set("note", private, title="secret"),
                owner.op("note", private, "text", field="body",
                         update=base64.b64encode(upd).decode())])
    cursor = member.pull()[-1]["seq"]
    owner.push([owner.set("note", private, project_id=pid)])
    put = [e for e in member.pull(cursor) if e["id"] == private]
    assert [e["kind"] for e in put] == ["put"] and put[0]["fields"]["title"] == "secret"
    # The put carries the whole document, and the member's snapshot has the text.
    doc: Doc[Any] = Doc()
    doc.apply_update(base64.b64decode(put[0]["body_state"]))
    assert str(doc.get("body", type=Text)) == "the secret text"
    assert any(n["body"] == "the secret text" for n in member.snapshot()["notes"])
    cursor = member.pull()[-1]["seq"]
    owner.push([owner.set("note", private, project_id=None)])
    assert [e["kind"] for e in member.pull(cursor) if e["id"] == private] == ["revoke"]


def test_unshared_data_never_reaches_another_user(api: Api) -> None:
    alice, bob = api.user(), api.user()
    nid, pid = new_id(), new_id()
    alice.push([alice.set("project", pid, title="mine"),
                alice.set("note", nid, title="private", project_id=pid)])
    assert bob.pull() == []
    snap = bob.snapshot()
    assert snap["notes"] == [] and snap["projects"] == [] and snap["cursor"] == 0
    # Bob's ops on Alice's ids are refused and change nothing.
    r = bob.push([bob.set("note", nid, title="hijack"), bob.op("note", nid, "delete"),
                  bob.set("project", pid, title="hijack"),
                  bob.set("note", new_id(), project_id=pid)])
    assert [x.get("code") for x in r["results"]] == ["forbidden"] * 4
    assert alice.snapshot()["notes"][0]["title"] == "private"


def test_member_endpoints_check_access(api: Api) -> None:
    owner, member, pid, _ = shared_project(api)
    stranger = api.user()
    assert api.get(f"/v1/projects/{pid}/members", headers=stranger.headers).status_code == 404
    assert api.post(f"/v1/projects/{pid}/members", json={"email": stranger.email,
                                                         "role": "editor"},
                    headers=stranger.headers).status_code == 404
    assert api.delete(f"/v1/projects/{pid}/members/{member.user_id}",
                      headers=stranger.headers).status_code == 404
    assert api.delete(f"/v1/projects/{pid}/members/{owner.user_id}",
                      headers=owner.headers).status_code == 409
    assert api.post(f"/v1/projects/{pid}/members", json={"email": "none@example.com",
                                                         "role": "viewer"},
                    headers=owner.headers).status_code == 404
    assert api.post(f"/v1/projects/{pid}/members", json={"email": member.email,
                                                         "role": "admin"},
                    headers=owner.headers).status_code == 400
    listed = api.get(f"/v1/projects/{pid}/members", headers=member.headers).json()["members"]
    assert {m["user_id"] for m in listed} == {owner.user_id, member.user_id}


def test_a_removal_racing_an_editors_title_writes_leaves_nothing_after_the_revoke(
        api: Api) -> None:
    """Title writes share-lock their project (they cannot change it), so several run at
    once; a member removal still waits for them. After the revoke in the editor's log, no
    event about the project's notes follows, and every write either applied before the
    removal or was refused after it."""
    owner, editor, pid, nid = shared_project(api)
    other = new_id()
    owner.push([owner.set("note", other, title="Chapter 2", project_id=pid)])
    results: list[str] = []
    errors: list[BaseException] = []
    writing = threading.Event()

    def write(d: Device, note: str) -> None:
        try:
            with Api(str(api.base_url)) as own:
                d.api = own
                for i in range(40):
                    r = d.push([d.set("note", note, title=f"race {i}")])
                    results.append(r["results"][0].get("code") or r["results"][0]["status"])
                    if len(results) >= 6:
                        writing.set()
        except BaseException as e:  # surfaced below
            errors.append(e)

    editor2 = editor.login_again("editor-2")
    threads = [threading.Thread(target=write, args=(d, n))
               for d, n in ((editor, nid), (editor2, other))]
    for t in threads:
        t.start()
    assert writing.wait(30)
    r = api.delete(f"/v1/projects/{pid}/members/{editor.user_id}", headers=owner.headers)
    assert r.status_code == 204
    for t in threads:
        t.join()
    assert not errors, errors
    assert set(results) == {"applied", "forbidden"}
    editor.api = api  # the threads' own clients are closed
    events = editor.pull()
    revoke = max(e["seq"] for e in events if e["kind"] == "revoke")
    # (The removal's own `member` event follows its revokes, in the same transaction.)
    assert [e["kind"] for e in events if e["seq"] > revoke] in ([], ["member"])
    assert sum(e["kind"] == "set" and e["fields"].get("title", "").startswith("race ")
               for e in events) == results.count("applied")


def test_a_note_moved_to_five_members_stores_its_document_once(
        api: Api, db: psycopg.Connection[Any]) -> None:
    owner = api.user("owner")
    members = [api.user(f"member{i}") for i in range(5)]
    pid, nid = new_id(), new_id()
    owner.push([owner.set("project", pid, title="Five")])
    for m in members:
        r = api.post(f"/v1/projects/{pid}/members", json={"email": m.email, "role": "editor"},
                     headers=owner.headers)
        assert r.status_code == 201, r.text
    text = ("a hundred kilobytes of chapter " * 3400)[:100_000]
    upd, state = text_update(None, lambda t: t.insert(0, text))
    owner.push([owner.set("note", nid, title="long"),
                owner.op("note", nid, "text", field="body",
                         update=base64.b64encode(upd).decode())])
    owner.push([owner.set("note", nid, project_id=pid)])
    puts = db.execute("SELECT user_id, op_id FROM events WHERE entity_id = %s AND kind = 'put'",
                      (nid,)).fetchall()
    assert {str(u) for u, _ in puts} == {m.user_id for m in members}
    [op_id] = {o for _, o in puts}  # one op, copied into each member's log
    stored = db.execute("SELECT count(*), sum(length(data)) FROM payloads WHERE op_id = %s",
                        (op_id,)).fetchone()
    assert stored is not None and stored[0] == 1 and len(upd) <= stored[1] < 2 * len(upd)
    # Every member still receives the whole document.
    for m in members:
        [put] = [e for e in m.pull() if e["id"] == nid]
        assert put["kind"] == "put" and base64.b64decode(put["body_state"]) == state
        assert [n["body"] for n in m.snapshot()["notes"]] == [text]
