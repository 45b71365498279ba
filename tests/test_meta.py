"""An app's own fields: `meta.<key>` on notes and projects, one LWW register per key, shown
as one `meta` map in pull, snapshot, REST and export; bounded, validated, filterable; and
a project's first-class `status` (paused too) and `deadline`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from tests.fix_services import drop_database, fresh_database
from tests.helpers import PASSWORD, Api, new_id
from tests.test_rebuild import run_cli


def results(response: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(r["status"], r.get("code")) for r in response["results"]]


def test_two_devices_editing_different_meta_keys_both_survive(api: Api) -> None:
    laptop = api.user()
    phone = laptop.login_again("phone")
    nid, pid = new_id(), new_id()
    laptop.push([laptop.set("note", nid, title="n"), laptop.set("project", pid, title="p")])
    t = int(time.time() * 1000) - 60_000  # in the past: a future clock is canonicalised
    # Offline on both: different keys of one note, the phone's clock the earlier.
    laptop.push([laptop.set("note", nid, laptop.hlc(t + 10), **{"meta.color": "red"}),
                 laptop.set("project", pid, laptop.hlc(t + 10), **{"meta.client": "ACME"})])
    phone.push([phone.set("note", nid, phone.hlc(t), **{"meta.folder": {"path": ["a", "b"]}}),
                phone.set("project", pid, phone.hlc(t), **{"meta.rate": 95.5})])
    note = laptop.get(f"/v1/notes/{nid}").json()
    assert note["meta"] == {"color": "red", "folder": {"path": ["a", "b"]}}
    assert {"meta.color", "meta.folder"} <= set(note["clocks"])
    snap = phone.snapshot()
    assert [p["meta"] for p in snap["projects"]] == [{"client": "ACME", "rate": 95.5}]
    assert [n["meta"] for n in snap["notes"]] == [note["meta"]]


def test_the_same_meta_key_resolves_by_hlc(api: Api) -> None:
    laptop = api.user()
    phone = laptop.login_again("phone")
    nid = new_id()
    laptop.push([laptop.set("note", nid, title="n")])
    t = int(time.time() * 1000) - 60_000  # in the past: a future clock is canonicalised
    laptop.push([laptop.set("note", nid, laptop.hlc(t + 5), **{"meta.color": "red"})])
    phone.push([phone.set("note", nid, phone.hlc(t), **{"meta.color": "blue"})])  # older
    assert laptop.get(f"/v1/notes/{nid}").json()["meta"] == {"color": "red"}
    # null clears the key; an older write arriving after cannot bring it back.
    laptop.push([laptop.set("note", nid, laptop.hlc(t + 20), **{"meta.color": None})])
    phone.push([phone.set("note", nid, phone.hlc(t + 15), **{"meta.color": "green"})])
    note = laptop.get(f"/v1/notes/{nid}").json()
    assert note["meta"] == {} and "meta.color" in note["clocks"]
    # Pulled events carry the fields as written: each device merges them per key.
    sets = [e["fields"] for e in phone.pull() if e["kind"] == "set" and e["id"] == nid]
    assert {"meta.color": None} in sets and {"meta.color": "green"} in sets


def test_oversize_and_malformed_meta_is_refused_and_changes_nothing(api: Api) -> None:
    d = api.user()
    nid, pid = new_id(), new_id()
    d.push([d.set_fields("note", nid, {"title": "n", "meta.ok": 1}),
            d.set("project", pid, title="p")])
    bad = [
        d.set_fields("note", nid, {"meta.big": "x" * (16 * 1024)}),  # past 16 KiB alone
        d.set_fields("note", nid, {"meta.": 1}),  # an empty key
        d.set_fields("note", nid, {"meta." + "k" * 65: 1}),  # a key past 64 characters
        d.set_fields("note", nid, {"meta.s": {"deep": "a\x00"}}),  # NUL anywhere inside
        d.set_fields("note", nid, {"metaless": 1}),  # not a field
        d.set("project", pid, status="someday"),
        d.set("project", pid, deadline="2026-13-01"),
        d.set("project", pid, deadline="tomorrow"),
    ]
    assert results(d.push(bad)) == [("rejected", "validation")] * len(bad)
    # 16 KiB per entity in total: two halves fit, a third key does not.
    half = "y" * 7000
    assert results(d.push([d.set("note", nid, **{"meta.a": half}),
                           d.set("note", nid, **{"meta.b": half})])) == [("applied", None)] * 2
    assert results(d.push([d.set("note", nid, **{"meta.c": half})])) == [
        ("rejected", "validation")]
    # Clearing a key makes room again.
    assert results(d.push([d.set("note", nid, **{"meta.a": None}),
                           d.set("note", nid, **{"meta.c": half})])) == [("applied", None)] * 2
    note = d.get(f"/v1/notes/{nid}").json()
    assert note["meta"] == {"ok": 1, "b": half, "c": half}
    # REST: the same rules, 422 with `validation`, nothing written.
    version = note["version"]
    for body in ({"meta": {"big": "x" * (16 * 1024)}}, {"meta": {"s": "a\x00"}},
                 {"meta": "not an object"}, {"meta": {"d": half}}):
        r = d.api.patch(f"/v1/notes/{nid}", json=body, headers=d.headers)
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation", r.text
    assert d.get(f"/v1/notes/{nid}").json()["version"] == version
    r = d.api.patch(f"/v1/projects/{pid}", json={"deadline": "2026-02-30"}, headers=d.headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "validation", r.text


def test_rest_meta_status_deadline_and_filters(api: Api) -> None:
    d = api.user()
    r = d.api.post("/v1/projects", json={"title": "Client hub", "status": "paused",
                                         "deadline": "2027-03-31",
                                         "meta": {"client": "ACME"}}, headers=d.headers)
    assert r.status_code == 201, r.text
    project = r.json()
    assert (project["status"], project["deadline"], project["meta"]) == (
        "paused", "2027-03-31", {"client": "ACME"})
    pid = project["id"]
    r = d.api.patch(f"/v1/projects/{pid}", json={"deadline": None, "meta": {"rate": 90}},
                    headers=d.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["deadline"], r.json()["meta"]) == (None, {"client": "ACME", "rate": 90})
    assert [p["id"] for p in d.get("/v1/projects", params={"status": "paused"}).json()[
        "projects"]] == [pid]

    ids = []
    for meta in ({"color": "red", "done": True}, {"color": "blue"}, {}):
        r = d.api.post("/v1/notes", json={"title": "n", "meta": meta}, headers=d.headers)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])

    def listed(**params: str) -> set[str]:
        r = d.get("/v1/notes", params=params)
        assert r.status_code == 200, r.text
        return {n["id"] for n in r.json()["notes"]}

    assert listed(meta_key="color") == {ids[0], ids[1]}
    assert listed(**{"meta.color": "red"}) == {ids[0]}
    assert listed(**{"meta.done": "true"}) == {ids[0]}
    assert listed(**{"meta.color": "green"}) == set()
    assert listed(meta_key="client") == set()
    assert [p["id"] for p in d.get("/v1/projects", params={"meta.client": "ACME"}).json()[
        "projects"]] == [pid]
    # Export carries meta and settings.
    d.push([d.set("settings", d.user_id, theme="dark")])
    export = d.get("/v1/export")
    assert export.status_code == 200, export.text
    doc = export.json()
    assert {n["id"]: n["meta"] for n in doc["notes"]}[ids[0]] == {"color": "red", "done": True}
    assert doc["projects"][0]["meta"] == {"client": "ACME", "rate": 90}
    assert doc["settings"]["values"] == {"theme": "dark"}


def test_a_move_puts_meta_to_the_new_members(api: Api) -> None:
    owner, friend = api.user(), api.user()
    pid, nid = new_id(), new_id()
    owner.push([owner.set("project", pid, title="shared"),
                owner.set_fields("note", nid, {"title": "n", "meta.color": "red", "meta.x": 1}),
                owner.set_fields("note", nid, {"meta.x": None})])
    r = owner.api.post(f"/v1/projects/{pid}/members", json={"email": friend.email,
                                                            "role": "viewer"},
                       headers=owner.headers)
    assert r.status_code == 201, r.text
    owner.push([owner.set("note", nid, project_id=pid)])
    put = [e for e in friend.pull() if e["kind"] == "put" and e["id"] == nid]
    assert len(put) == 1
    assert put[0]["fields"]["meta.color"] == "red"
    assert put[0]["fields"]["meta.x"] is None  # cleared, with its clock
    assert "meta.x" in put[0]["clocks"]
    assert friend.get(f"/v1/notes/{nid}").json()["meta"] == {"color": "red"}


def test_rebuild_verify_covers_meta_and_deadline(api: Api, pg_url: str,
                                                 db: psycopg.Connection[Any]) -> None:
    d = api.user()
    nid, pid = new_id(), new_id()
    d.push([d.set_fields("note", nid, {"title": "n", "meta.color": "red", "meta.gone": 1}),
            d.set_fields("note", nid, {"meta.gone": None}),
            d.set_fields("project", pid,
                         {"title": "p", "deadline": "2027-01-01", "meta.k": [1, 2]})])
    assert run_cli(pg_url, "rebuild", "--verify").returncode == 0
    db.execute("""UPDATE notes SET meta = '{"color": "blue"}' WHERE id = %s""", (nid,))
    db.execute("UPDATE projects SET deadline = '2030-01-01' WHERE id = %s", (pid,))
    r = run_cli(pg_url, "rebuild", "--verify")
    assert r.returncode == 1
    assert f"note {nid}: meta is {{'color': 'blue'}}, the log says {{'color': 'red'}}" \
        in r.stdout, r.stdout
    assert f"project {pid}: deadline is '2030-01-01'" in r.stdout, r.stdout
    assert run_cli(pg_url, "rebuild").returncode == 0
    assert d.get(f"/v1/notes/{nid}").json()["meta"] == {"color": "red"}
    assert d.get(f"/v1/projects/{pid}").json()["deadline"] == "2027-01-01"


def test_export_then_import_brings_back_meta_deadline_and_settings(
        api: Api, pg_url: str, pg_admin_url: str, tmp_path: Path) -> None:
    d = api.user()
    nid, pid = new_id(), new_id()
    d.push([d.set("project", pid, title="p", deadline="2027-05-01", **{"meta.client": "X"}),
            d.set("note", nid, title="n", project_id=pid, **{"meta.color": "red"}),
            d.set("settings", d.user_id, theme="dark", font_size=13),
            d.set("settings", d.user_id, font_size=None)])
    out = tmp_path / "export.json"
    env = {**os.environ, "SYNCD_DATA_DIR": str(tmp_path)}
    r = run_cli(pg_url, "export", "--user", d.email, "--out", str(out))
    assert r.returncode == 0, r.stderr
    empty = fresh_database(pg_admin_url)
    try:
        r = subprocess.run([sys.executable, "-m", "syncd", "import", str(out), "--password",
                            PASSWORD],
                           env={**env, "DATABASE_URL": empty}, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        query = ("SELECT (SELECT meta FROM notes WHERE id = %(n)s),"
                 " (SELECT meta FROM projects WHERE id = %(p)s),"
                 " (SELECT deadline::text FROM projects WHERE id = %(p)s),"
                 " (SELECT fields FROM settings WHERE user_id = %(u)s),"
                 " (SELECT clocks ? 'font_size' FROM settings WHERE user_id = %(u)s)")
        params = {"n": nid, "p": pid, "u": d.user_id}
        with psycopg.connect(pg_url) as before, psycopg.connect(empty) as after:
            was = before.execute(query, params).fetchone()
            now = after.execute(query, params).fetchone()
        assert was == ({"color": "red"}, {"client": "X"}, "2027-05-01", {"theme": "dark"}, True)
        assert now == was
        assert run_cli(empty, "rebuild", "--verify").returncode == 0
    finally:
        drop_database(pg_admin_url, empty)
