"""The projection is a function of the log: `syncd rebuild --verify` agrees after a
randomized workload and catches a tampered row; the log refuses UPDATE and DELETE."""

from __future__ import annotations

import base64
import os
import random
import subprocess
import sys
from typing import Any

import psycopg
import pytest

from tests.helpers import Api, new_id, text_update


def run_cli(pg_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": pg_url}
    return subprocess.run([sys.executable, "-m", "syncd", *args], env=env, text=True,
                          capture_output=True, timeout=120)


def random_workload(api: Api, seed: int) -> None:
    rng = random.Random(seed)
    owner = api.user("owner")
    phone = owner.login_again("phone")
    friend = api.user("friend")
    pid = new_id()
    owner.push([owner.set("project", pid, title="Novel", word_goal=rng.randint(5, 40))])
    api.post(f"/v1/projects/{pid}/members", json={"email": friend.email, "role": "editor"},
             headers=owner.headers)
    notes: dict[str, bytes | None] = {}
    for _ in range(25):
        d = rng.choice([owner, phone, friend])
        ops: list[dict[str, Any]] = []
        for _ in range(rng.randint(1, 6)):
            roll = rng.random()
            if roll < 0.25 or not notes:
                nid = new_id()
                notes[nid] = None
                ops.append(d.set("note", nid, title=f"n{rng.randint(0, 99)}",
                                 project_id=pid if d is friend or rng.random() < 0.6 else None))
            else:
                nid = rng.choice(list(notes))
                if roll < 0.55:
                    words = " ".join(rng.choice(["alpha", "beta", "gamma"])
                                     for _ in range(rng.randint(1, 5)))
                    upd, state = text_update(notes[nid], lambda t, w=words: t.insert(0, w + " "))
                    notes[nid] = state
                    ops.append(d.op("note", nid, "text", field="body",
                                    update=base64.b64encode(upd).decode()))
                elif roll < 0.7:
                    ops.append(d.set("note", nid, tags=[rng.choice("abc")],
                                     pinned=rng.random() < 0.5))
                elif roll < 0.8:
                    ops.append(d.op("note", nid, rng.choice(["delete", "restore"])))
                elif roll < 0.9:
                    ops.append(d.set("project", pid, word_goal=rng.randint(5, 60)))
                else:
                    ops.append(d.set("note", nid, project_id=rng.choice([pid, None])))
        d.push(ops)


@pytest.mark.parametrize("seed", [1, 2])
def test_verify_agrees_after_a_random_workload(api: Api, pg_url: str, seed: int) -> None:
    random_workload(api, seed)
    r = run_cli(pg_url, "rebuild", "--verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "the projection matches the log" in r.stdout


def test_verify_finds_a_tampered_row_and_rebuild_repairs_it(
        api: Api, pg_url: str, db: psycopg.Connection[Any]) -> None:
    random_workload(api, 3)
    row = db.execute("SELECT id, title FROM notes ORDER BY id LIMIT 1").fetchone()
    assert row is not None
    db.execute("UPDATE notes SET title = 'tampered' WHERE id = %s", (row[0],))
    r = run_cli(pg_url, "rebuild", "--verify")
    assert r.returncode == 1
    assert f"note {row[0]}: title is 'tampered'" in r.stdout
    r = run_cli(pg_url, "rebuild")
    assert r.returncode == 0, r.stderr
    fixed = db.execute("SELECT title FROM notes WHERE id = %s", (row[0],)).fetchone()
    assert fixed is not None and fixed[0] == row[1]
    assert run_cli(pg_url, "rebuild", "--verify").returncode == 0

    # Writing stats are derived from the log too.
    words = db.execute("SELECT user_id, note_id, quarter, words FROM words_written"
                       " ORDER BY words DESC LIMIT 1").fetchone()
    assert words is not None and words[3] > 0
    db.execute("UPDATE words_written SET words = words + 1000 WHERE user_id = %s"
               " AND note_id = %s AND quarter = %s", words[:3])
    r = run_cli(pg_url, "rebuild", "--verify")
    assert r.returncode == 1
    assert f"note {words[1]}" in r.stdout and f"{words[3] + 1000}, the log says {words[3]}" \
        in r.stdout
    assert run_cli(pg_url, "rebuild").returncode == 0
    assert db.execute("SELECT words FROM words_written WHERE user_id = %s AND note_id = %s"
                      " AND quarter = %s", words[:3]).fetchone() == (words[3],)


def test_the_log_is_append_only(api: Api, db: psycopg.Connection[Any]) -> None:
    d = api.user()
    d.push([d.set("note", new_id(), title="kept")])
    for sql in ("UPDATE events SET kind = 'x' WHERE user_id = %s",
                "DELETE FROM events WHERE user_id = %s"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute(sql, (d.user_id,))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("TRUNCATE events")
    row = db.execute("SELECT count(*) FROM events WHERE user_id = %s", (d.user_id,)).fetchone()
    assert row is not None and row[0] == 1


def test_migrate_fills_words_written_from_the_log(
        api: Api, pg_url: str, db: psycopg.Connection[Any]) -> None:
    """A database from before words_written: migrate creates it and replays the log."""
    random_workload(api, 4)
    query = ("SELECT user_id, note_id, quarter, words FROM words_written WHERE words <> 0"
             " ORDER BY 1, 2, 3")
    before = db.execute(query).fetchall()
    assert len(before) >= 5
    db.execute("DROP TABLE words_written")
    r = run_cli(pg_url, "migrate")
    assert r.returncode == 0, r.stderr
    assert db.execute(query).fetchall() == before


def test_migrate_is_idempotent(pg_url: str) -> None:
    for _ in range(2):
        r = run_cli(pg_url, "migrate")
        assert r.returncode == 0, r.stderr


def test_an_op_whose_fields_all_lose_still_versions_its_entity(api: Api, pg_url: str) -> None:
    """A delete that arrives after a newer restore (an offline device's late op) changes
    no field, yet it is in the log, and a replay makes it the note's version: the live
    row must say the same."""
    phone = api.user()
    laptop = phone.login_again("laptop")
    nid = new_id()
    t = phone.hlc()
    phone.push([phone.set("note", nid, t, title="n")])
    wall = int(t[:13])
    laptop.push([laptop.op("note", nid, "restore", laptop.hlc(wall + 2000))])
    late = phone.push([phone.op("note", nid, "delete", phone.hlc(wall + 1000))])
    assert late["results"][0]["status"] == "applied"
    note = phone.get(f"/v1/notes/{nid}").json()
    assert note["deleted"] is False
    verify = run_cli(pg_url, "rebuild", "--verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
