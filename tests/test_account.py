"""The account's data: writing stats across a time-zone boundary, export and `syncd import`
into an empty database, and account deletion that leaves no row of the user."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.abc import Params
from psycopg.rows import DictRow, dict_row

from tests.fix_services import drop_database, fresh_database
from tests.helpers import PASSWORD, Api, Device, new_id, text_update


class Body:
    """One note's document as a device holds it: edits become text ops."""

    def __init__(self, device: Device, note: str) -> None:
        self.device, self.note, self.state = device, note, b""

    def op(self, edit: Any, wall_ms: int | None = None) -> dict[str, Any]:
        update, self.state = text_update(self.state, edit)
        return self.device.op("note", self.note, "text", self.device.hlc(wall_ms),
                              field="body", update=base64.b64encode(update).decode())

    def add(self, words: int, wall_ms: int | None = None) -> dict[str, Any]:
        return self.op(lambda t: t.insert(len(t), " x" * words), wall_ms)


def _value(conn: psycopg.Connection[DictRow], query: str, params: Params) -> Any:
    """The one value of a query that returns one row of one column."""
    row = conn.execute(query, params).fetchone()
    assert row is not None
    (value,) = row.values()
    return value


def _ms(day: Any, at: time, tz: ZoneInfo) -> int:
    return int(datetime.combine(day, at, tz).timestamp() * 1000)


def test_stats_week_across_a_time_zone_boundary(api: Api) -> None:
    d = api.user()
    tz = ZoneInfo("America/New_York")
    r = d.api.patch("/v1/auth/me", json={"timezone": "America/New_York"}, headers=d.headers)
    assert r.status_code == 200 and r.json()["user"]["timezone"] == "America/New_York"
    assert d.api.patch("/v1/auth/me", json={"timezone": "Mars/Olympus"},
                       headers=d.headers).status_code == 400
    now = datetime.now(tz)
    today = now.date()
    nid = new_id()
    body = Body(d, nid)
    ops = [d.set("note", nid, d.hlc(_ms(today - timedelta(days=7), time(9), tz)), title="diary")]
    # (days ago, local time, words added; negative = words deleted)
    script = [(6, time(10), 5), (5, time(23, 30), 4), (4, time(0, 30), 3), (3, time(12), 2),
              (2, time(12), -3), (1, time(12), 6)]
    for ago, at, words in script:
        wall = _ms(today - timedelta(days=ago), at, tz)
        ops.append(body.add(words, wall) if words > 0 else
                   body.op(lambda t, n=-words: t.__delitem__(slice(0, 2 * n)), wall))
    ops.append(body.add(1, int((now - timedelta(minutes=2)).timestamp() * 1000)))
    ops.sort(key=lambda op: op["hlc"])  # a device's clock only moves forward
    for i, op in enumerate(ops, 1):
        op["client_seq"] = i
    assert all(r["status"] == "applied" for r in d.push(ops)["results"])

    s = d.get("/v1/stats", params={"period": "week"}).json()
    assert s["timezone"] == "America/New_York" and s["to"] == today.isoformat()
    assert [day["words"] for day in s["days"]] == [5, 4, 3, 2, -3, 6, 1]
    assert s["days"][0]["date"] == (today - timedelta(days=6)).isoformat()
    assert s["total_words"] == 18
    assert s["streak"] == {"current": 2, "longest": 4}

    # The same edits in UTC: 23:30 in New York is the next day there.
    d.api.patch("/v1/auth/me", json={"timezone": "UTC"}, headers=d.headers)
    utc = {day["date"]: day["words"]
           for day in d.get("/v1/stats", params={"period": "all"}).json()["days"]}
    assert utc[(today - timedelta(days=5)).isoformat()] == 0
    assert utc[(today - timedelta(days=4)).isoformat()] == 7
    assert d.get("/v1/stats", params={"period": "decade"}).status_code == 400


def _workload(api: Api) -> tuple[Device, Device, dict[str, str]]:
    """A with a project (goal met: milestones), notes with bodies, a deleted one, a member B
    who edits A's note and writes in it; B with a project A edits and writes in.
    Words written: A 5 + 2 + 2 + 1 = 10, B 4 + 3 = 7."""
    a, b = api.user(), api.user()
    ids = {k: new_id() for k in ("p", "n1", "n2", "n3", "q", "nq", "na")}
    n1 = Body(a, ids["n1"])
    a.push([a.set("project", ids["p"], title="Novel", word_goal=4),
            a.set("note", ids["n1"], title="Ch 1", tags=["draft"], project_id=ids["p"]),
            n1.add(5), a.set("note", ids["n2"], title="gone", pinned=True),
            a.op("note", ids["n2"], "delete"),
            a.set("note", ids["n3"], title="loose", favorite=True), Body(a, ids["n3"]).add(2)])
    r = api.post(f"/v1/projects/{ids['p']}/members", json={"email": b.email, "role": "editor"},
                 headers=a.headers)
    assert r.status_code == 201, r.text
    b.push([b.set("note", ids["n1"], title="Chapter 1"), Body(b, ids["n1"]).add(4),
            b.set("project", ids["q"], title="B's"),
            b.set("note", ids["nq"], title="B note", project_id=ids["q"]),
            Body(b, ids["nq"]).add(3)])
    r = api.post(f"/v1/projects/{ids['q']}/members", json={"email": a.email, "role": "editor"},
                 headers=b.headers)
    assert r.status_code == 201, r.text
    a.push([a.set("note", ids["nq"], title="B note, edited by A"), Body(a, ids["nq"]).add(2),
            a.set("note", ids["na"], title="A in Q", project_id=ids["q"]),
            Body(a, ids["na"]).add(1)])
    return a, b, ids


def test_stats_count_each_authors_own_words(api: Api) -> None:
    """Words written in a shared note count for whoever wrote them, not the note's owner."""
    a, b, _ = _workload(api)
    for d, words in ((a, 10), (b, 7)):
        s = d.get("/v1/stats", params={"period": "week"}).json()
        assert s["total_words"] == words
        assert s["days"][-1]["words"] == words and s["streak"]["current"] == 1


def _projection(url: str, owner: str) -> dict[str, Any]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        notes = conn.execute(
            """SELECT id, title, tags, pinned, favorite, deleted, project_id, body, word_count,
                      clocks FROM notes WHERE owner_id = %s ORDER BY id""", (owner,)).fetchall()
        projects = conn.execute(
            """SELECT id, title, description, word_goal, status, deleted, word_count, clocks,
                      milestones FROM projects WHERE owner_id = %s ORDER BY id""",
            (owner,)).fetchall()
    for p in projects:
        p["milestones"] = sorted(p["milestones"])
    return {"notes": notes, "projects": projects}


def _cli(*args: str, url: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "SYNCD_DATA_DIR": str(tmp)}
    return subprocess.run([sys.executable, "-m", "syncd", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_export_has_everything_and_imports_to_the_same_projection(
        api: Api, pg_url: str, pg_admin_url: str, tmp_path: Path) -> None:
    a, _b, ids = _workload(api)
    r = a.get("/v1/export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["format"] == "syncd-export" and doc["user"]["email"] == a.email
    assert {n["id"] for n in doc["notes"]} == {ids["n1"], ids["n2"], ids["n3"], ids["na"]}
    assert [p["id"] for p in doc["projects"]] == [ids["p"]]
    assert {m["role"] for m in doc["projects"][0]["members"]} == {"owner", "editor"}
    assert [m["project_id"] for m in doc["memberships"]] == [ids["q"]]
    n1 = next(n for n in doc["notes"] if n["id"] == ids["n1"])
    assert n1["body"].split() == ["x"] * 9 and n1["body_state"] and n1["clocks"]["title"]
    assert [e["seq"] for e in doc["events"]] == [e["seq"] for e in a.pull()]
    assert "password" not in r.text and "password_hash" not in r.text

    out = tmp_path / "a.json"
    run = _cli("export", "--user", a.email, "--out", str(out), url=pg_url, tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    cli_doc = json.loads(out.read_text())
    assert cli_doc["notes"] == doc["notes"] and cli_doc["events"] == doc["events"]

    empty = fresh_database(pg_admin_url)
    try:
        run = _cli("import", str(out), "--password", PASSWORD, url=empty, tmp=tmp_path)
        assert run.returncode == 0, run.stderr
        before, after = _projection(pg_url, a.user_id), _projection(empty, a.user_id)
        # A's note in B's project comes back outside any project (B is not on that server).
        before_na = next(n for n in before["notes"] if str(n["id"]) == ids["na"])
        before_na["project_id"] = None  # the project_id clock is the same hlc, value null
        assert after == before
        verify = _cli("rebuild", "--verify", url=empty, tmp=tmp_path)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert _cli("import", str(out), url=empty, tmp=tmp_path).returncode == 1  # exists
    finally:
        drop_database(pg_admin_url, empty)


def test_account_deletion_leaves_no_row_of_the_user(api: Api, pg_url: str,
                                                    tmp_path: Path) -> None:
    a, b, ids = _workload(api)
    second = a.login_again("phone")
    assert api.request("DELETE", "/v1/account", json={"password": "wrong password!"},
                       headers=a.headers).status_code == 403
    with psycopg.connect(pg_url, row_factory=dict_row) as conn:
        ops = [r["op_id"] for r in conn.execute(
            "SELECT op_id FROM events WHERE user_id = %s AND has_payload", (a.user_id,))]
    b_cursor = b.pull()[-1]["seq"]
    r = api.request("DELETE", "/v1/account", json={"password": PASSWORD}, headers=a.headers)
    assert r.status_code == 204, r.text
    assert second.get("/v1/auth/me").status_code == 401

    gone = [a.user_id, a.device_id, second.device_id]
    with psycopg.connect(pg_url, row_factory=dict_row) as conn:
        columns = conn.execute(
            """SELECT c.table_name, c.column_name FROM information_schema.columns c
               JOIN information_schema.tables t USING (table_schema, table_name)
               WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
                 AND c.data_type = 'uuid'""").fetchall()
        assert columns
        for col in columns:
            n = _value(conn, f'SELECT count(*) FROM "{col["table_name"]}" '
                             f'WHERE "{col["column_name"]}" = ANY(%s::uuid[])', (gone,))
            assert n == 0, f"{col['table_name']}.{col['column_name']} still names the user"
        for table, key in (("notes", "n1"), ("notes", "na"), ("projects", "p")):
            assert _value(conn, f"SELECT count(*) FROM {table} WHERE id = %s",
                          (ids[key],)) == 0
        assert _value(conn, """SELECT count(*) FROM payloads p WHERE p.op_id = ANY(%s)
                               AND NOT EXISTS (SELECT 1 FROM events e
                                               WHERE e.op_id = p.op_id)""", (ops,)) == 0
        # B's words in A's notes went with them (the rebuild below agrees).
        assert _value(conn, "SELECT count(*) FROM words_written WHERE note_id = ANY(%s)",
                      ([ids["n1"], ids["na"]],)) == 0
        assert _value(conn, "SELECT sum(words) FROM words_written WHERE user_id = %s",
                      (b.user_id,)) == 3
        # A's edit of B's note stays in B's history, pseudonymised.
        assert _value(conn, "SELECT title FROM notes WHERE id = %s",
                      (ids["nq"],)) == "B note, edited by A"

    revoked = {(e["entity"], e["id"]) for e in b.pull(b_cursor) if e["kind"] == "revoke"}
    assert {("project", ids["p"]), ("note", ids["n1"]), ("note", ids["na"])} <= revoked
    snap = b.snapshot()
    assert ids["p"] not in {p["id"] for p in snap["projects"]}
    assert {ids["nq"]} <= {n["id"] for n in snap["notes"]}
    verify = _cli("rebuild", "--verify", url=pg_url, tmp=tmp_path)
    assert verify.returncode == 0, verify.stdout[-3000:] + verify.stderr[-2000:]


def test_a_pull_crosses_the_gap_a_deleted_collaborator_leaves(api: Api) -> None:
    """Deleting an account deletes its notes' and projects' events from its members' logs
    too, so a member's seqs have a gap there: a pull crosses it, however small its pages."""
    owner, member = api.user(), api.user()
    pid = new_id()
    owner.push([owner.set("project", pid, title="p")])
    assert api.post(f"/v1/projects/{pid}/members", json={"email": member.email,
                    "role": "editor"}, headers=owner.headers).status_code == 201
    owner.push([owner.set("note", new_id(), title=f"n{i}", project_id=pid) for i in range(3)])
    member.push([member.set("note", new_id(), title="mine")])
    r = api.request("DELETE", "/v1/account", json={"password": PASSWORD},
                    headers=owner.headers)
    assert r.status_code == 204, r.text
    seqs = [e["seq"] for e in member.pull()]
    assert seqs[0] > 1 and len(seqs) >= 2  # the shared events are gone: a gap before "mine"
    for limit in (1, 2):
        paged: list[int] = []
        cursor = 0
        while True:
            page = member.get("/v1/sync/pull", params={"cursor": cursor, "limit": limit}).json()
            paged += [e["seq"] for e in page["events"]]
            cursor = page["cursor"]
            if not page["has_more"]:
                break
        assert paged == seqs, limit
