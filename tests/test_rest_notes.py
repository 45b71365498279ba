"""REST views of notes and projects: writes go through the log, body PATCHes merge as
CRDT diffs, lists filter/sort/paginate by keyset, ETags guard writes, isolation holds."""

from __future__ import annotations

import base64
import threading
from typing import Any

import httpx

from tests.helpers import Api, Device, new_id, text_update


def call(dev: Device, method: str, path: str, expect: int | None = 200,
         **kw: Any) -> httpx.Response:
    r = dev.api.request(method, path, headers={**dev.headers, **kw.pop("headers", {})}, **kw)
    if expect is not None:
        assert r.status_code == expect, r.text
    return r


def create(dev: Device, **body: Any) -> dict[str, Any]:
    return dict(call(dev, "POST", "/v1/notes", 201, json=body).json())


def test_rest_writes_reach_another_device(api: Api) -> None:
    laptop = api.user("laptop")
    phone = laptop.login_again("phone")
    r = call(laptop, "POST", "/v1/notes", 201,
             json={"title": "Groceries", "tags": ["home"], "body": "milk and eggs"})
    note = r.json()
    assert r.headers["etag"] == f'W/"{note["version"]}"'
    assert r.headers["location"].endswith(f"/v1/notes/{note['id']}")
    assert (note["title"], note["body"], note["word_count"]) == ("Groceries", "milk and eggs", 3)

    call(laptop, "PATCH", f"/v1/notes/{note['id']}", json={"pinned": True, "title": "Shop"})
    call(laptop, "DELETE", f"/v1/notes/{note['id']}")
    restored = call(laptop, "POST", f"/v1/notes/{note['id']}/restore").json()
    assert restored["deleted"] is False and restored["pinned"] is True

    events = [e for e in phone.pull() if e["id"] == note["id"]]
    assert [e["kind"] for e in events] == ["set", "text", "set", "delete", "restore"]
    assert events[2]["fields"] == {"pinned": True, "title": "Shop"}
    assert all("client_seq" not in e and e["device_id"] == laptop.device_id for e in events)
    snap = {n["id"]: n for n in phone.snapshot()["notes"]}
    assert snap[note["id"]]["body"] == "milk and eggs"
    assert call(phone, "GET", f"/v1/notes/{note['id']}").json()["title"] == "Shop"


def _device_edit(dev: Device, note_id: str, edit: Any) -> dict[str, Any]:
    """An edit a device makes offline on the state it last synced; returns the op."""
    state = base64.b64decode(next(n for n in dev.snapshot()["notes"]
                                  if n["id"] == note_id)["body_state"])
    update, _ = text_update(state, edit)
    return dev.op("note", note_id, "text", field="body",
                  update=base64.b64encode(update).decode())


def test_body_patch_merges_with_a_concurrent_device_edit(api: Api) -> None:
    web = api.user("web")
    tablet = web.login_again("tablet")
    note = create(web, body="hello world")
    offline = _device_edit(tablet, note["id"], lambda t: t.insert(len(b"hello "), "dear "))
    call(web, "PATCH", f"/v1/notes/{note['id']}", json={"body": "hello world!"})
    assert tablet.push([offline])["results"][0]["status"] == "applied"
    assert call(web, "GET", f"/v1/notes/{note['id']}").json()["body"] == "hello dear world!"

    # The other order: the device's edit lands first, the PATCH diffs against it.
    offline = _device_edit(tablet, note["id"], lambda t: t.insert(0, "Oh, "))
    tablet.push([offline])
    r = call(web, "PATCH", f"/v1/notes/{note['id']}", json={"body": "Oh, hello dear world!!"})
    assert r.json()["body"] == "Oh, hello dear world!!"
    # Non-ASCII: pycrdt offsets are UTF-8 bytes, the diff must not split a character.
    r = call(web, "PATCH", f"/v1/notes/{note['id']}", json={"body": "Oh, héllo 😀 world!!"})
    assert r.json()["body"] == "Oh, héllo 😀 world!!"
    text_events = [e for e in tablet.pull() if e["kind"] == "text"]
    assert len(text_events) == 6  # the diffs are small updates, not whole documents
    assert all(len(base64.b64decode(e["update"])) < 120 for e in text_events[1:])


def test_body_patch_from_a_read_version_keeps_edits_made_since(api: Api) -> None:
    web = api.user("web")
    tablet = web.login_again("tablet")
    note = create(web, body="hello world")
    read = call(web, "GET", f"/v1/notes/{note['id']}").json()
    # The tablet's edit reaches the server after the web client read the note.
    tablet.push([_device_edit(tablet, note["id"], lambda t: t.insert(len(b"hello "), "dear "))])
    r = call(web, "PATCH", f"/v1/notes/{note['id']}",
             json={"body": "hello world!", "base_version": read["version"]})
    assert r.json()["body"] == "hello dear world!"
    # Without base_version the text is diffed from the current document: what the
    # client sends is what the body becomes.
    r = call(web, "PATCH", f"/v1/notes/{note['id']}", json={"body": "hello world?"})
    assert r.json()["body"] == "hello world?"
    for bad in (0, "7", True):
        call(web, "PATCH", f"/v1/notes/{note['id']}", 422, json={"body": "x", "base_version": bad})


def test_body_patches_racing_device_pushes_lose_nothing(api: Api) -> None:
    web = api.user("web")
    note = create(web, body="middle")["id"]
    with Api(str(api.base_url)) as other:
        tablet = other.login(web.email, "tablet")

        def patches() -> None:
            for i in range(10):
                read = call(web, "GET", f"/v1/notes/{note}").json()
                call(web, "PATCH", f"/v1/notes/{note}",
                     json={"body": f"{read['body']} w{i}", "base_version": read["version"]})

        def pushes() -> None:
            for i in range(10):
                view = call(tablet, "GET", f"/v1/notes/{note}").json()
                update, _ = text_update(base64.b64decode(view["body_state"]),
                                        lambda t, i=i: t.insert(0, f"d{i} "))
                tablet.push([tablet.op("note", note, "text", field="body",
                                       update=base64.b64encode(update).decode())])

        threads = [threading.Thread(target=patches), threading.Thread(target=pushes)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    words = call(web, "GET", f"/v1/notes/{note}").json()["body"].split()
    assert sorted(words) == sorted(["middle", *(f"w{i}" for i in range(10)),
                                    *(f"d{i}" for i in range(10))])


def test_list_filters_sort_and_keyset_pagination(api: Api) -> None:
    dev = api.user()
    pid = call(dev, "POST", "/v1/projects", 201, json={"title": "Book"}).json()["id"]
    made = []
    for i in range(13):
        made.append(create(dev, title=f"note {i:02d}", tags=["even"] if i % 2 == 0 else ["odd"],
                           pinned=i % 3 == 0, favorite=i == 5,
                           project_id=pid if i < 4 else None))
    call(dev, "DELETE", f"/v1/notes/{made[12]['id']}")

    def ids(**params: Any) -> list[str]:
        out, cursor = [], None
        while True:
            page = call(dev, "GET", "/v1/notes", params={**params, "limit": 5,
                                                          **({"cursor": cursor} if cursor else {})})
            body = page.json()
            assert len(body["notes"]) <= 5
            out += [n["id"] for n in body["notes"]]
            cursor = body["next_cursor"]
            if cursor is None:
                return out

    live = [n["id"] for n in made[:12]]
    assert ids(sort="title") == live
    assert ids(sort="title", order="desc") == live[::-1]
    assert ids(sort="created") == live[::-1]
    assert sorted(ids()) == sorted(live)
    assert ids(sort="title", tag="even") == live[0:12:2]
    assert ids(sort="title", pinned="true") == [live[i] for i in (0, 3, 6, 9)]
    assert ids(sort="title", favorite="true") == [live[5]]
    assert ids(sort="title", project=pid) == live[:4]
    assert ids(sort="title", project="none") == live[4:]
    assert ids(deleted="true") == [made[12]["id"]]
    assert len(ids(deleted="all")) == 13
    r = call(dev, "GET", f"/v1/projects/{pid}/notes", params={"sort": "title"})
    assert [n["id"] for n in r.json()["notes"]] == live[:4]
    assert "body_state" not in r.json()["notes"][0]

    # A page does not shift when a row before the cursor is removed.
    first = call(dev, "GET", "/v1/notes", params={"sort": "title", "limit": 3}).json()
    call(dev, "DELETE", f"/v1/notes/{live[0]}")
    second = call(dev, "GET", "/v1/notes", params={"sort": "title", "limit": 3,
                                                   "cursor": first["next_cursor"]}).json()
    assert [n["id"] for n in second["notes"]] == live[3:6]

    for bad in ({"cursor": "nope"}, {"sort": "size"}, {"limit": 500}, {"pinned": "maybe"},
                {"cursor": first["next_cursor"], "sort": "created"}):
        assert call(dev, "GET", "/v1/notes", 400, params=bad).json()["error"]["code"]


def test_etag_and_if_match(api: Api) -> None:
    dev = api.user()
    note = create(dev, title="v1")
    path = f"/v1/notes/{note['id']}"
    etag = call(dev, "GET", path).headers["etag"]
    assert call(dev, "GET", path, 304, headers={"If-None-Match": etag}).content == b""
    r = call(dev, "PATCH", path, json={"title": "v2"}, headers={"If-Match": etag})
    new_etag = r.headers["etag"]
    assert new_etag != etag
    for method, body in (("PATCH", {"title": "lost"}), ("DELETE", None)):
        r = call(dev, method, path, 412, json=body, headers={"If-Match": etag})
        assert r.json()["error"]["details"]["etag"] == new_etag
    r = call(dev, "POST", path + "/restore", 412, headers={"If-Match": '"0"'})
    assert call(dev, "GET", path).json()["title"] == "v2"
    call(dev, "DELETE", path, headers={"If-Match": new_etag.removeprefix("W/")})
    call(dev, "POST", path + "/restore", headers={"If-Match": "*"})


def test_a_write_answers_the_entity_as_a_read_then_sees_it(api: Api) -> None:
    """PATCH, DELETE and restore answer with the note as saved (built in memory, not read
    back): it must equal what a GET returns right after, timestamps, state and all."""
    dev = api.user()
    pid = call(dev, "POST", "/v1/projects", 201, json={"title": "P"}).json()["id"]
    note = create(dev, title="a", body="first words")
    path = f"/v1/notes/{note['id']}"
    for method, body in (("PATCH", {"title": "b", "tags": ["x"], "pinned": True}),
                         ("PATCH", {"body": "first and second words", "project_id": pid}),
                         ("PATCH", {"title": "b"}),  # changes nothing
                         ("DELETE", None), ("POST", None)):
        url = path + "/restore" if method == "POST" else path
        answered = call(dev, method, url, json=body)
        assert answered.json() == call(dev, "GET", path).json(), (method, body)
        assert answered.headers["etag"] == call(dev, "GET", path).headers["etag"]


def test_validation_errors(api: Api) -> None:
    dev = api.user()
    note = create(dev, title="ok")
    path = f"/v1/notes/{note['id']}"
    for body in ({"title": "x" * 501}, {"color": "red"}, {"body": 5}, {"tags": "a"},
                 {"project_id": new_id()}, {"word_count": 3}):
        assert call(dev, "PATCH", path, 422, json=body).json()["error"]["code"] == "validation"
    r = dev.api.patch(path, content=b"{nope", headers={**dev.headers,
                                                      "content-type": "application/json"})
    assert r.status_code == 400
    assert call(dev, "POST", "/v1/notes", 409, json={"id": note["id"]}).json()[
        "error"]["code"] == "already_exists"
    assert call(dev, "GET", path).json()["title"] == "ok"
    assert call(dev, "GET", "/v1/notes/not-a-uuid", 404)


def test_another_users_notes_are_invisible(api: Api) -> None:
    alice, mallory = api.user("alice"), api.user("mallory")
    note = create(alice, title="secret", body="private words")
    pid = call(alice, "POST", "/v1/projects", 201, json={"title": "Private"}).json()["id"]
    for method, path in (("GET", f"/v1/notes/{note['id']}"), ("PATCH", f"/v1/notes/{note['id']}"),
                         ("DELETE", f"/v1/notes/{note['id']}"),
                         ("POST", f"/v1/notes/{note['id']}/restore"),
                         ("GET", f"/v1/projects/{pid}"), ("GET", f"/v1/projects/{pid}/notes"),
                         ("PATCH", f"/v1/projects/{pid}"), ("DELETE", f"/v1/projects/{pid}")):
        r = call(mallory, method, path, 404, json={"title": "mine"} if method == "PATCH" else None)
        assert r.json()["error"]["code"] == "not_found"
    assert call(mallory, "GET", "/v1/notes", params={"deleted": "all"}).json()["notes"] == []
    assert call(mallory, "GET", "/v1/projects").json()["projects"] == []
    assert call(alice, "GET", f"/v1/notes/{note['id']}").json()["title"] == "secret"
    # Moving one's note into someone else's project is refused like any write to it.
    mine = create(mallory, title="mine")
    call(mallory, "PATCH", f"/v1/notes/{mine['id']}", 403, json={"project_id": pid})


def test_projects_over_rest_and_shared_roles(api: Api) -> None:
    owner, editor = api.user("owner"), api.user("editor")
    r = call(owner, "POST", "/v1/projects", 201,
             json={"title": "Novel", "word_goal": 10, "status": "active"})
    project = r.json()
    pid = project["id"]
    assert [m["role"] for m in project["members"]] == ["owner"]
    create(owner, title="ch1", project_id=pid, body="one two three four five")
    call(owner, "POST", f"/v1/projects/{pid}/members", 201,
         json={"email": editor.email, "role": "editor"})
    got = call(editor, "GET", f"/v1/projects/{pid}").json()
    assert (got["word_count"], got["progress"]) == (5, 0.5)
    assert call(editor, "PATCH", f"/v1/projects/{pid}", json={"word_goal": 20}).json()[
        "word_goal"] == 20
    call(editor, "DELETE", f"/v1/projects/{pid}", 403)
    assert call(editor, "GET", f"/v1/projects/{pid}/notes").json()["notes"][0]["title"] == "ch1"
    assert call(owner, "GET", "/v1/projects", params={"status": "active"}).json()[
        "projects"][0]["id"] == pid
    call(owner, "DELETE", f"/v1/projects/{pid}")
    assert call(editor, "GET", "/v1/projects").json()["projects"] == []
    assert any(e["kind"] == "delete" and e["id"] == pid for e in editor.pull())


def test_list_pages_merge_owned_and_shared_notes_in_order(api: Api) -> None:
    """A list mixes the user's own notes and notes shared with them through a project;
    every page is in order and the pages together hold each visible note once."""
    me, friend = api.user(), api.user()
    pid = new_id()
    friend.push([friend.set("project", pid, title="shared")])
    call(friend, "POST", f"/v1/projects/{pid}/members", 201,
         json={"email": me.email, "role": "editor"})
    mine = [new_id() for _ in range(7)]
    theirs = [new_id() for _ in range(6)]
    hidden = new_id()  # the friend's note outside the project
    for i in range(7):  # interleave, so each page draws from both sources
        me.push([me.set("note", mine[i], title=f"m{i}")])
        if i < 6:
            friend.push([friend.set("note", theirs[i], title=f"t{i}", project_id=pid)])
    friend.push([friend.set("note", hidden, title="private")])
    for sort, order in (("updated", "desc"), ("created", "asc"), ("title", "asc")):
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 4, "sort": sort, "order": order}
            if cursor:
                params["cursor"] = cursor
            page = call(me, "GET", "/v1/notes", params=params).json()
            seen += page["notes"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert sorted(n["id"] for n in seen) == sorted(mine + theirs), sort
        key = {"updated": "updated_at", "created": "created_at", "title": "title"}[sort]
        keys = [(n[key], n["id"]) for n in seen]
        assert keys == sorted(keys, reverse=order == "desc"), sort


def test_every_member_lists_every_note_of_a_shared_project(api: Api) -> None:
    """Others' notes in a user's projects are read as the owner ids below and above the
    user's own: with three members, one of them has others on both sides."""
    users = [api.user() for _ in range(3)]
    owner = users[0]
    pid = new_id()
    owner.push([owner.set("project", pid, title="anthology")])
    for u in users[1:]:
        call(owner, "POST", f"/v1/projects/{pid}/members", 201,
             json={"email": u.email, "role": "editor"})
    notes = {u.user_id: [new_id(), new_id()] for u in users}
    for u in users:
        u.push([u.set("note", n, title=f"by {u.user_id[:4]}", project_id=pid)
                for n in notes[u.user_id]])
        u.push([u.set("note", new_id(), title="private")])  # outside the project
    project_notes = sorted(n for ns in notes.values() for n in ns)
    for u in users:
        listed = call(u, "GET", "/v1/notes", params={"limit": 200}).json()["notes"]
        assert sorted(n["id"] for n in listed if n["project_id"] == pid) == project_notes
        assert len(listed) == len(project_notes) + 1  # and their own private note
        within = call(u, "GET", f"/v1/projects/{pid}/notes", params={"limit": 3}).json()
        seen, cursor = within["notes"], within["next_cursor"]
        while cursor:
            page = call(u, "GET", f"/v1/projects/{pid}/notes",
                        params={"limit": 3, "cursor": cursor}).json()
            seen, cursor = seen + page["notes"], page["next_cursor"]
        assert sorted(n["id"] for n in seen) == project_notes
