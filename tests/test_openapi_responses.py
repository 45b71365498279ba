"""Every success answer matches its response schema in the OpenAPI document, checked on an
account that holds one of everything: a shared project with a deadline and a milestone, a
note in it with text, tags and meta, a history, a conflict, a search hit. (The contract
test sends generated requests to fresh accounts, whose lists are empty and whose random
ids mostly name nothing: it cannot see the shape of a page of notes or of a conflict.)
"""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema

from syncd.app import routes
from syncd.openapi import document
from tests.helpers import PASSWORD, Api, Device, new_id

DOC = document(routes())


def conforms(r: httpx.Response, path: str, method: str = "get",
             status: int | None = None) -> Any:
    """The answer's JSON, after checking it against the operation's schema for its status
    (a success unless `status` says which)."""
    assert r.status_code == status if status else r.status_code < 300, r.text
    op = DOC["paths"][path][method]["responses"][str(r.status_code)]
    schema = {**op["content"]["application/json"]["schema"], "components": DOC["components"]}
    body = r.json()
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).validate(body)
    return body


def test_every_answer_on_a_full_account_matches_its_schema(api: Api) -> None:
    email = f"full-{new_id()[:8]}@example.com"
    conforms(api.post("/v1/auth/register", json={"email": email, "password": PASSWORD}),
             "/v1/auth/register", "post")
    login = conforms(api.post("/v1/auth/login", json={"email": email, "password": PASSWORD}),
                     "/v1/auth/login", "post")
    laptop = Device(api, login["user"]["id"], login["device_id"], email,
                    login["access_token"], login["refresh_token"])
    phone = laptop.login_again("phone")
    refreshed = conforms(api.post("/v1/auth/refresh",
                                  json={"refresh_token": phone.refresh_token}),
                         "/v1/auth/refresh", "post")
    phone.token = refreshed["access_token"]
    friend = api.user()
    h = laptop.headers

    project = conforms(api.post("/v1/projects", headers=h, json={
        "title": "Book", "word_goal": 4, "meta": {"colour": "teal"}}), "/v1/projects", "post")
    pid = project["id"]
    laptop.push([laptop.set("project", pid, deadline="2031-05-01")])
    note = conforms(api.post("/v1/notes", headers=h, json={
        "title": "Chapter", "tags": ["draft"], "project_id": pid, "meta": {"mood": 3},
        "body": "the lighthouse keeper counted ships"}), "/v1/notes", "post")
    nid = note["id"]
    added = conforms(api.post(f"/v1/projects/{pid}/members", headers=h,
                              json={"email": friend.email, "role": "editor"}),
                     "/v1/projects/{id}/members", "post")
    assert added["role"] == "editor"
    # Two devices writing a title neither had seen the other's change to: a conflict.
    base = max(e["seq"] for e in phone.pull())
    laptop.push([laptop.op("note", nid, "set", fields={"title": "laptop's"}, base=base)])
    phone.push([phone.op("note", nid, "set", fields={"title": "phone's"}, base=base)])

    assert conforms(laptop.get("/v1/auth/me"), "/v1/auth/me")["user"]["email"] == email
    assert len(conforms(laptop.get("/v1/devices"), "/v1/devices")["devices"]) == 2
    assert len(conforms(laptop.get("/v1/sync/status"), "/v1/sync/status")["devices"]) == 2
    snap = conforms(laptop.get("/v1/sync/snapshot"), "/v1/sync/snapshot")
    [p] = snap["projects"]
    assert (p["deadline"], p["meta"]) == ("2031-05-01", {"colour": "teal"})
    assert p["milestones"]  # 5 words of a goal of 4
    assert [n["id"] for n in snap["notes"]] == [nid]
    exported = conforms(laptop.get("/v1/export"), "/v1/export")
    assert exported["events"] and exported["conflicts"] and exported["notes"]
    assert conforms(laptop.get("/v1/notes"), "/v1/notes")["notes"][0]["tags"] == ["draft"]
    assert conforms(laptop.get("/v1/projects"), "/v1/projects")["projects"][0]["members"]
    assert conforms(laptop.get(f"/v1/projects/{pid}/notes"), "/v1/projects/{id}/notes")["notes"]
    conforms(laptop.get(f"/v1/notes/{nid}"), "/v1/notes/{id}")
    conforms(laptop.get(f"/v1/projects/{pid}"), "/v1/projects/{id}")
    assert len(conforms(laptop.get(f"/v1/projects/{pid}/members"),
                        "/v1/projects/{id}/members")["members"]) == 2
    changes = conforms(laptop.get(f"/v1/notes/{nid}/history"), "/v1/notes/{id}/history")
    assert any("text" in c for c in changes["events"])
    assert any("fields" in c for c in changes["events"])
    conforms(laptop.get(f"/v1/projects/{pid}/history"), "/v1/projects/{id}/history")
    first = changes["events"][0]["seq"]
    past = conforms(laptop.get(f"/v1/notes/{nid}/at", params={"seq": first}),
                    "/v1/notes/{id}/at")
    assert past["title"] == "Chapter"
    conforms(laptop.get(f"/v1/projects/{pid}/at", params={"seq": first}),
             "/v1/projects/{id}/at")
    hits = conforms(laptop.get("/v1/search", params={"q": "lighthouse"}), "/v1/search")
    assert [r["id"] for r in hits["results"]] == [nid]

    [conflict] = conforms(phone.get("/v1/conflicts"), "/v1/conflicts")["conflicts"]
    settled = conforms(api.post(f"/v1/conflicts/{conflict['id']}/resolve",
                                headers=phone.headers, json={"choose": "theirs"}),
                       "/v1/conflicts/{id}/resolve", "post")
    assert settled["resolution"]["choose"] == "theirs"
    assert conforms(phone.get("/v1/conflicts", params={"status": "all"}),
                    "/v1/conflicts")["conflicts"][0]["resolved_at"] is not None
    reverted = conforms(api.post(f"/v1/notes/{nid}/revert", headers=h, json={"seq": first}),
                        "/v1/notes/{id}/revert", "post")
    assert reverted["title"] == "Chapter"
    conforms(api.post(f"/v1/projects/{pid}/revert", headers=h, json={"seq": first}),
             "/v1/projects/{id}/revert", "post")
    conforms(api.patch(f"/v1/notes/{nid}", headers=h, json={"pinned": True}),
             "/v1/notes/{id}", "patch")
    conforms(api.delete(f"/v1/notes/{nid}", headers=h), "/v1/notes/{id}", "delete")
    conforms(api.post(f"/v1/notes/{nid}/restore", headers=h), "/v1/notes/{id}/restore", "post")
    conforms(api.patch(f"/v1/projects/{pid}", headers=h, json={"title": "Book two"}),
             "/v1/projects/{id}", "patch")
    conforms(api.delete(f"/v1/projects/{pid}", headers=h), "/v1/projects/{id}", "delete")
    conforms(api.post(f"/v1/projects/{pid}/restore", headers=h),
             "/v1/projects/{id}/restore", "post")
    assert conforms(api.get("/health"), "/health")["checks"]["postgres"]["status"] == "ok"
